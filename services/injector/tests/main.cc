#define BOOST_TEST_MODULE injector
#include <boost/test/unit_test.hpp>

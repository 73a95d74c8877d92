#define BOOST_TEST_MODULE hsm
#include <boost/test/unit_test.hpp>

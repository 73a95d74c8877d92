#define BOOST_TEST_MODULE pks
#include <boost/test/unit_test.hpp>

#define BOOST_TEST_MODULE kms
#include <boost/test/unit_test.hpp>

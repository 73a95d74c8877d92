#define BOOST_TEST_MODULE kms_process
#include <boost/test/unit_test.hpp>

#define BOOST_TEST_MODULE broker_kill
#include <boost/test/unit_test.hpp>

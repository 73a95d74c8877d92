#define BOOST_TEST_MODULE ecu_sim
#include <boost/test/unit_test.hpp>

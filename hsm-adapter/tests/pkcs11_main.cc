#define BOOST_TEST_MODULE hsm_pkcs11
#include <boost/test/unit_test.hpp>

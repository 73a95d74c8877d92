#include <boost/test/unit_test.hpp>

#include "keyline/common/hex.h"

namespace keyline {
namespace {

BOOST_AUTO_TEST_SUITE(HexTests)

BOOST_AUTO_TEST_CASE(RoundTripsLowerCase) {
  std::vector<uint8_t> bytes = {0x00, 0x01, 0xab, 0xff};
  BOOST_TEST(ToHex(bytes) == "0001abff");
  auto parsed = ParseHex("0001ABff", "--uid");
  BOOST_REQUIRE(parsed.ok());
  BOOST_TEST(*parsed == bytes);
}

BOOST_AUTO_TEST_CASE(OddLengthIsRefusedWithName) {
  auto parsed = ParseHex("abc", "--uid");
  BOOST_TEST(parsed.status().message() == "--uid: odd number of hex digits (3)");
}

BOOST_AUTO_TEST_CASE(NonHexDigitIsRefusedWithPosition) {
  auto parsed = ParseHex("00zz", "--m4");
  BOOST_TEST(parsed.status().message() == "--m4: 'z' at position 3 is not a hex digit");
}

BOOST_AUTO_TEST_CASE(WrongLengthSaysBothLengths) {
  auto parsed = ParseHex("0011", "--uid", 15);
  BOOST_TEST(parsed.status().code() == StatusCode::kInvalidArgument);
  BOOST_TEST(parsed.status().message() ==
             "--uid: expected 15 bytes (30 hex digits), got 2 bytes");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline

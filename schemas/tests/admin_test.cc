// admin.fbs: the keylinectl -> KMS requests round-trip with every field, and survive corruption.
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "samples.h"
#include "corruption.h"

namespace keyline::schemas::testing {

namespace {

BOOST_AUTO_TEST_SUITE(Admin)

BOOST_AUTO_TEST_CASE(ProductAddRoundTripsWithEveryField) {
  const std::vector<uint8_t> bytes = Sample<wire::AdminRequest>();
  auto decoded = DecodeMessage<wire::AdminRequest>(bytes);
  BOOST_REQUIRE_MESSAGE(decoded.ok(), decoded.status().ToString());
  BOOST_TEST((( *decoded)->command_type() == wire::AdminCommand::ProductAdd));
  const wire::Product* product = (*decoded)->command_as_ProductAdd()->product();
  BOOST_REQUIRE(product != nullptr);
  BOOST_TEST(Text(product->name()) == "acme-bcm");
  BOOST_TEST(Text(product->oem()) == "acme");
  BOOST_TEST(product->slots()->size() == 2u);
  BOOST_TEST(product->slots()->Get(1)->slot() == 4);
  BOOST_TEST(product->slots()->Get(1)->flags() == 0x02);
  BOOST_TEST((product->flag_layout() == wire::SheFlagLayout::SHE_CLASSIC));
  BOOST_TEST(Text(product->transport_key_ref()) == "acme-transport");
  BOOST_TEST(product->target_stock() == 500u);
}

BOOST_AUTO_TEST_CASE(EveryCommandRoundTripsThroughTheUnion) {
  flatbuffers::FlatBufferBuilder fbb;
  auto fetch = wire::CreateVerificationFetch(fbb, fbb.CreateString("v-3"),
                                             wire::VerificationPart::SIGNATURE, 128, 4096);
  fbb.Finish(wire::CreateAdminRequest(fbb, wire::AdminCommand::VerificationFetch, fetch.Union()));
  auto decoded = DecodeMessage<wire::AdminRequest>(FinishedBytes(fbb));
  BOOST_REQUIRE(decoded.ok());
  const auto* got = (*decoded)->command_as_VerificationFetch();
  BOOST_REQUIRE(got != nullptr);
  BOOST_TEST(Text(got->verification_id()) == "v-3");
  BOOST_TEST((got->part() == wire::VerificationPart::SIGNATURE));
  BOOST_TEST(got->offset() == 128u);
  BOOST_TEST(got->max_bytes() == 4096u);
  BOOST_TEST((*decoded)->command_as_OemAdd() == nullptr);
}

BOOST_AUTO_TEST_CASE(AdminReplyRoundTrips) {
  const std::vector<uint8_t> bytes = Sample<wire::AdminReply>();
  auto decoded = DecodeMessage<wire::AdminReply>(bytes);
  BOOST_REQUIRE(decoded.ok());
  BOOST_TEST(Text((*decoded)->json()) == "{\"ok\":true}");
  BOOST_TEST(Bytes((*decoded)->data()).size() == 40u);
}

BOOST_AUTO_TEST_CASE(AdminTypesAreAppendedAfterInjectionResult) {
  BOOST_TEST(static_cast<int>(wire::MessageType::AdminRequest) == 11);
  BOOST_TEST(static_cast<int>(wire::MessageType::AdminReply) == 12);
  BOOST_TEST(static_cast<int>(wire::AdminCommand::OemAdd) == 1);
  BOOST_TEST(static_cast<int>(wire::AdminCommand::KmsStatusQuery) == 13);
}

KEYLINE_CORRUPTION_TESTS(AdminRequest)
KEYLINE_CORRUPTION_TESTS(AdminReply)

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas::testing

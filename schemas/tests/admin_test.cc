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
  BOOST_TEST(static_cast<int>(wire::AdminCommand::OemCaImport) == 14);
  BOOST_TEST(static_cast<int>(wire::AdminCommand::PlantCaIssue) == 15);
  BOOST_TEST(static_cast<int>(wire::AdminCommand::PlantCaInstall) == 16);
  BOOST_TEST(static_cast<int>(wire::AdminCommand::PlantCaRevoke) == 17);
  BOOST_TEST(static_cast<int>(wire::AdminCommand::CertificateBudgetSet) == 18);
}

// Found by tests/fuzz/fuzz_messages (17 bytes, kept in tests/fuzz/corpus/fuzz_messages/): a
// command with no command type. The Verifier accepted it and keyline-queue's PayloadToJson
// followed the untyped command to a null type and crashed.
BOOST_AUTO_TEST_CASE(CommandWithoutTypeIsRefused) {
  const std::vector<uint8_t> crash = {0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                                      0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00};
  DecodeError why{};
  auto decoded = DecodeMessage<wire::AdminRequest>(crash, {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kInvalidField));
  BOOST_TEST(decoded.status().message() == "AdminRequest: command is present but its type is NONE");
  BOOST_TEST(!VerifyPayload(wire::MessageType::AdminRequest, crash).ok());
}

// The other half of the same gap: a command type with no command. The KMS's admin handler read
// command_as_OemAdd()->name() through the null pointer the generated accessor returned.
BOOST_AUTO_TEST_CASE(CommandTypeWithoutCommandIsRefused) {
  for (auto type : {wire::AdminCommand::OemAdd, wire::AdminCommand::BatchUpload,
                    wire::AdminCommand::KmsStatusQuery}) {
    flatbuffers::FlatBufferBuilder fbb;
    wire::AdminRequestBuilder request(fbb);
    request.add_command_type(type);
    fbb.Finish(request.Finish());
    DecodeError why{};
    auto decoded = DecodeMessage<wire::AdminRequest>(FinishedBytes(fbb), {}, &why);
    BOOST_REQUIRE(!decoded.ok());
    BOOST_TEST((why == DecodeError::kInvalidField));
    BOOST_TEST(decoded.status().message() ==
               "AdminRequest: command is missing (its type is " +
                   std::to_string(static_cast<int>(type)) + ")");
  }
}

// A newer keylinectl's command stays readable as "unknown": the KMS answers with its error.
BOOST_AUTO_TEST_CASE(CommandOfANewerTypeStillDecodes) {
  flatbuffers::FlatBufferBuilder fbb;
  auto query = wire::CreateKmsStatusQuery(fbb);
  wire::AdminRequestBuilder request(fbb);
  request.add_command_type(static_cast<wire::AdminCommand>(200));
  request.add_command(query.Union());
  fbb.Finish(request.Finish());
  auto decoded = DecodeMessage<wire::AdminRequest>(FinishedBytes(fbb));
  BOOST_REQUIRE(decoded.ok());
  BOOST_TEST(static_cast<int>((*decoded)->command_type()) == 200);
}

KEYLINE_CORRUPTION_TESTS(AdminRequest)
KEYLINE_CORRUPTION_TESTS(AdminReply)

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas::testing

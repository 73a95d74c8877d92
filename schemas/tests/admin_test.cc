// admin.fbs: the keylinectl -> KMS requests round-trip with every field, and survive corruption.
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "samples.h"
// After samples.h: the corruption templates find ReadAll for the admin tables by ordinary lookup.
#include "corruption.h"

namespace keyline::schemas::testing {

template <>
std::vector<uint8_t> Sample<wire::AdminRequest>() {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::SlotLayout>> slots = {
      wire::CreateSlotLayout(fbb, 1, 1, 1, 0),
      wire::CreateSlotLayout(fbb, 4, 1, 2, 0x02)};
  auto product = wire::CreateProduct(
      fbb, fbb.CreateString("acme-bcm"), fbb.CreateString("acme"), fbb.CreateVector(slots),
      wire::SheFlagLayout::SHE_CLASSIC, fbb.CreateString("acme-transport"), 100, 500, 60);
  auto add = wire::CreateProductAdd(fbb, product);
  fbb.Finish(wire::CreateAdminRequest(fbb, wire::AdminCommand::ProductAdd, add.Union()));
  auto bytes = FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

template <>
std::vector<uint8_t> Sample<wire::AdminReply>() {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> data = Counting(40, 0x30);
  fbb.Finish(wire::CreateAdminReply(fbb, fbb.CreateString("{\"ok\":true}"), CreateBytes(fbb, data)));
  auto bytes = FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

uint64_t ReadAll(const wire::AdminRequest& m) {
  uint64_t sum = static_cast<uint64_t>(m.command_type());
  if (const auto* add = m.command_as_ProductAdd(); add != nullptr && add->product() != nullptr) {
    const wire::Product* p = add->product();
    sum += Text(p->name()).size() + Text(p->oem()).size() + Text(p->transport_key_ref()).size();
    sum += p->min_stock() + p->target_stock() + p->reservation_timeout_s();
    if (p->slots() != nullptr) {
      for (const auto* slot : *p->slots()) {
        if (slot != nullptr) sum += slot->slot() + slot->auth_slot() + slot->counter() + slot->flags();
      }
    }
  }
  if (const auto* oem = m.command_as_OemAdd(); oem != nullptr) {
    sum += Text(oem->name()).size() + Bytes(oem->signing_public_key()).size();
  }
  if (const auto* upload = m.command_as_BatchUpload(); upload != nullptr) {
    for (uint8_t b : Bytes(upload->data())) sum += b;
  }
  return sum;
}

uint64_t ReadAll(const wire::AdminReply& m) {
  uint64_t sum = Text(m.json()).size();
  for (uint8_t b : Bytes(m.data())) sum += b;
  return sum;
}

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

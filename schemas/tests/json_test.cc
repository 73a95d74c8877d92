// PayloadToJson: every message prints as valid JSON, bytes as hex, sealed key sets by size only.
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "keyline/common/hex.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/json.h"
#include "keyline/schemas/message_types.h"
#include "samples.h"

namespace keyline::schemas::testing {
namespace {

template <WireMessage T>
nlohmann::json JsonOf() {
  const std::vector<uint8_t> bytes = Sample<T>();
  BOOST_REQUIRE(VerifyPayload(MessageTraits<T>::kType, bytes).ok());
  std::string text = PayloadToJson(MessageTraits<T>::kType, bytes);
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
  BOOST_TEST(!parsed.is_discarded(), MessageTraits<T>::kName << " printed invalid JSON: " << text);
  return parsed;
}

BOOST_AUTO_TEST_SUITE(Json)

BOOST_AUTO_TEST_CASE(EveryMessagePrintsAsValidJson) {
  JsonOf<wire::StockBatch>();
  JsonOf<wire::ConfigUpdate>();
  JsonOf<wire::VerificationRequest>();
  JsonOf<wire::InjectionRecord>();
  JsonOf<wire::PlantStatus>();
  JsonOf<wire::VerificationWatermark>();
  JsonOf<wire::KeyPackageRequest>();
  JsonOf<wire::KeyPackage>();
  JsonOf<wire::InjectionResult>();
  nlohmann::json request = JsonOf<wire::StockRequest>();
  BOOST_TEST(request.is_object());
  BOOST_TEST(request.contains("product"));
}

BOOST_AUTO_TEST_CASE(SealedKeySetsPrintOnlyTheirSize) {
  const std::vector<uint8_t> bytes = Sample<wire::StockBatch>();
  std::string text = PayloadToJson(wire::MessageType::StockBatch, bytes);
  auto batch = flatbuffers::GetRoot<wire::StockBatch>(bytes.data());
  BOOST_REQUIRE(batch->key_sets() != nullptr && batch->key_sets()->size() > 0);
  const auto* wrapped = batch->key_sets()->Get(0)->wrapped();
  BOOST_REQUIRE(wrapped != nullptr && wrapped->size() > 0);
  std::string wrapped_hex = ToHex({wrapped->data(), wrapped->size()});
  BOOST_TEST(text.find(wrapped_hex) == std::string::npos);
  BOOST_TEST(text.find("<sealed, " + std::to_string(wrapped->size()) + " bytes>") != std::string::npos,
             text);
}

BOOST_AUTO_TEST_CASE(ByteFieldsPrintAsHex) {
  const std::vector<uint8_t> bytes = Sample<wire::KeyPackageRequest>();
  auto request = flatbuffers::GetRoot<wire::KeyPackageRequest>(bytes.data());
  nlohmann::json json = JsonOf<wire::KeyPackageRequest>();
  BOOST_TEST(json["ecu_uid"] == ToHex({request->ecu_uid()->data(), request->ecu_uid()->size()}));
}

BOOST_AUTO_TEST_CASE(InjectionRecordBodyPrintsAsNestedJson) {
  const std::vector<uint8_t> body_bytes = SampleInjectionRecordBody();
  auto body = flatbuffers::GetRoot<wire::InjectionRecordBody>(body_bytes.data());
  nlohmann::json json = JsonOf<wire::InjectionRecord>();
  BOOST_REQUIRE(json["body"].is_object());
  BOOST_TEST(json["body"]["record_sequence"] == body->record_sequence());
  BOOST_TEST(json["body"]["plant"] == "plant-a");
  BOOST_TEST(json["body"]["key_set_id"] == "ks-acme-0001");
  BOOST_TEST(json["body"]["ecu_uid"] == ToHex({body->ecu_uid()->data(), body->ecu_uid()->size()}));
  BOOST_TEST(json["body"]["outcome"] == "INJECTED");
  BOOST_REQUIRE(json["body"]["slots"].is_array());
  BOOST_TEST(json["body"]["slots"].size() == 2u);
  BOOST_TEST(json["body"]["slots"][0]["m4"] ==
             ToHex({body->slots()->Get(0)->m4()->data(), body->slots()->Get(0)->m4()->size()}));
  BOOST_TEST(json["signer"] == "pks-plant-a-2026");
}

// The payload's own table verifies, but its body is garbage: a Verifier with nested checks
// turned off lets that through, and the printer must still never read it as a table.
BOOST_AUTO_TEST_CASE(InjectionRecordBodyThatDoesNotVerifyPrintsAsHexWithAMarker) {
  std::vector<uint8_t> garbage = Counting(40, 0xf0);
  garbage[0] = 0xff;  // root offset far outside the 40 bytes
  garbage[1] = 0xff;
  const std::vector<uint8_t> record =
      BuildInjectionRecord(garbage, "pks-plant-a-2026", Counting(kSignatureBytes, 0x80));
  BOOST_REQUIRE(!VerifyPayload(wire::MessageType::InjectionRecord, record).ok());
  flatbuffers::Verifier::Options options;
  options.check_nested_flatbuffers = false;
  flatbuffers::Verifier outer(record.data(), record.size(), options);
  BOOST_REQUIRE(outer.VerifyBuffer<wire::InjectionRecord>(nullptr));

  std::string text = PayloadToJson(wire::MessageType::InjectionRecord, record);
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  BOOST_REQUIRE_MESSAGE(!json.is_discarded(), "invalid JSON: " << text);
  BOOST_TEST(json["body"]["error"] == "body does not verify");
  BOOST_TEST(json["body"]["hex"] == ToHex(garbage));
  BOOST_TEST(json["signer"] == "pks-plant-a-2026");
}

// Empty and too-short bodies are not FlatBuffers either.
BOOST_AUTO_TEST_CASE(ShortInjectionRecordBodiesPrintAsHexWithAMarker) {
  for (size_t size : {size_t{0}, size_t{3}, size_t{8}}) {
    const std::vector<uint8_t> body = Counting(size, 1);
    const std::vector<uint8_t> record =
        BuildInjectionRecord(body, "pks-plant-a-2026", Counting(kSignatureBytes, 0x80));
    std::string text = PayloadToJson(wire::MessageType::InjectionRecord, record);
    nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
    BOOST_REQUIRE_MESSAGE(!json.is_discarded(), "invalid JSON: " << text);
    BOOST_TEST(json["body"]["error"] == "body does not verify", text);
    BOOST_TEST(json["body"]["hex"] == ToHex(body), text);
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas::testing

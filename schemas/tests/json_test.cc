// PayloadToJson: every message prints as valid JSON, bytes as hex, sealed key sets by size only.
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "keyline/common/hex.h"
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

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas::testing

// kms_pks.fbs: every KMS <-> PKS message round-trips with every field, and survives corruption.
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "corruption.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "samples.h"

namespace keyline::schemas::testing {
namespace {

std::vector<uint8_t> ToVector(std::span<const uint8_t> bytes) {
  return {bytes.begin(), bytes.end()};
}

// Decodes `bytes` bare and through an envelope, requires both to succeed, and returns the bare
// root (the envelope's copy is checked to hold the same bytes).
template <WireMessage T>
const T* DecodeBothWays(const std::vector<uint8_t>& bytes, std::vector<uint8_t>& envelope_out) {
  envelope_out = BuildEnvelope(SampleHeader(MessageTraits<T>::kType), bytes);
  StatusOr<VerifiedEnvelope> envelope = DecodeEnvelope(envelope_out);
  BOOST_REQUIRE_MESSAGE(envelope.ok(), envelope.status().ToString());
  BOOST_TEST((envelope->type == MessageTraits<T>::kType));
  BOOST_TEST(ToVector(envelope->payload) == bytes);
  BOOST_REQUIRE(PayloadAs<T>(*envelope).ok());

  StatusOr<const T*> decoded = DecodeMessage<T>(bytes);
  BOOST_REQUIRE_MESSAGE(decoded.ok(), decoded.status().ToString());
  return *decoded;
}

BOOST_AUTO_TEST_SUITE(KmsPks)

BOOST_AUTO_TEST_CASE(StockBatchRoundTripsWithEveryField) {
  const std::vector<uint8_t> bytes = Sample<wire::StockBatch>();
  std::vector<uint8_t> envelope;
  const wire::StockBatch* batch = DecodeBothWays<wire::StockBatch>(bytes, envelope);
  BOOST_TEST(Text(batch->request_id()) == "req-7");
  BOOST_TEST(Text(batch->batch_id()) == "batch-2026-11-25-001");
  BOOST_TEST(Text(batch->plant()) == "plant-a");
  BOOST_TEST(Text(batch->product()) == "acme-bcm-2027");
  BOOST_REQUIRE(batch->key_sets() != nullptr);
  BOOST_REQUIRE(batch->key_sets()->size() == 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    const wire::WrappedKeySet* set = batch->key_sets()->Get(i);
    BOOST_TEST(Text(set->key_set_id()) == "ks-acme-000" + std::to_string(i));
    BOOST_TEST(ToVector(Bytes(set->wrapped())) == Counting(80, 0x10));
    BOOST_TEST(ToVector(Bytes(set->slots())) ==
               (std::vector<uint8_t>{1, 4, static_cast<uint8_t>(5 + i)}));
  }
}

BOOST_AUTO_TEST_CASE(ConfigUpdateRoundTripsWithEveryField) {
  const std::vector<uint8_t> bytes = Sample<wire::ConfigUpdate>();
  std::vector<uint8_t> envelope;
  const wire::ConfigUpdate* config = DecodeBothWays<wire::ConfigUpdate>(bytes, envelope);
  BOOST_TEST(config->version() == 42u);
  BOOST_TEST(Text(config->plant()) == "plant-a");

  BOOST_REQUIRE(config->products() != nullptr);
  BOOST_REQUIRE(config->products()->size() == 2u);
  const wire::Product* bcm = config->products()->Get(0);
  BOOST_TEST(Text(bcm->name()) == "acme-bcm-2027");
  BOOST_TEST(Text(bcm->oem()) == "acme");
  BOOST_TEST((bcm->flag_layout() == wire::SheFlagLayout::SHE_CLASSIC));
  BOOST_TEST(Text(bcm->transport_key_ref()) == "tk-acme-1");
  BOOST_TEST(bcm->min_stock() == 100u);
  BOOST_TEST(bcm->target_stock() == 500u);
  BOOST_TEST(bcm->reservation_timeout_s() == 120u);
  BOOST_REQUIRE(bcm->slots() != nullptr);
  BOOST_REQUIRE(bcm->slots()->size() == 2u);
  BOOST_TEST(bcm->slots()->Get(0)->slot() == 1);
  BOOST_TEST(bcm->slots()->Get(0)->auth_slot() == 1);
  BOOST_TEST(bcm->slots()->Get(0)->counter() == 1u);
  BOOST_TEST(bcm->slots()->Get(0)->flags() == 0x10);
  BOOST_TEST(bcm->slots()->Get(1)->slot() == 4);

  const wire::Product* gateway = config->products()->Get(1);
  BOOST_TEST((gateway->flag_layout() == wire::SheFlagLayout::SHE_PLUS));
  BOOST_REQUIRE(gateway->slots() != nullptr);
  BOOST_TEST(gateway->slots()->Get(0)->counter() == 0x0fffffffu);  // the full 28-bit counter
  BOOST_TEST(gateway->slots()->Get(0)->flags() == 0x3f);           // all six SHE+ flags

  BOOST_REQUIRE(config->stations() != nullptr);
  BOOST_REQUIRE(config->stations()->size() == 2u);
  BOOST_TEST(Text(config->stations()->Get(1)->station_id()) == "line2-eol1");
  BOOST_TEST(CheckFixedBytes(config->stations()->Get(1)->curve_public_key(), kCurvePublicKeyBytes,
                             "curve_public_key")
                 .ok());
  BOOST_TEST(ToVector(Bytes(config->stations()->Get(1)->curve_public_key())) == Counting(32, 0xc0));

  BOOST_REQUIRE(config->sync() != nullptr);
  BOOST_TEST((config->sync()->mode() == wire::SyncMode::INTERVAL));
  BOOST_TEST(config->sync()->interval_s() == 900u);

  BOOST_REQUIRE(config->issuing_cas() != nullptr);
  BOOST_REQUIRE(config->issuing_cas()->size() == 1u);
  BOOST_TEST(Text(config->issuing_cas()->Get(0)->oem()) == "acme");
  BOOST_TEST(Text(config->issuing_cas()->Get(0)->key_name()) == "plant-ca/acme/1");
  BOOST_TEST(Text(config->issuing_cas()->Get(0)->certificate()).starts_with("-----BEGIN"));
  BOOST_TEST(Text(config->issuing_cas()->Get(0)->oem_ca_certificate()).ends_with("root\n"));
  BOOST_TEST(config->issuing_cas()->Get(0)->budget_min() == 250u);
  BOOST_TEST(config->issuing_cas()->Get(0)->budget_target() == 1000u);
}

BOOST_AUTO_TEST_CASE(PlantCaRequestAndCsrRoundTripWithEveryField) {
  std::vector<uint8_t> envelope;
  const std::vector<uint8_t> request_bytes = Sample<wire::PlantCaRequest>();
  const wire::PlantCaRequest* request = DecodeBothWays<wire::PlantCaRequest>(request_bytes, envelope);
  BOOST_TEST(Text(request->request_id()) == "plant-a/acme/1");
  BOOST_TEST(Text(request->oem()) == "acme");
  BOOST_TEST(Text(request->key_name()) == "plant-ca/acme/1");
  BOOST_TEST(Text(request->organization()) == "acme");
  BOOST_TEST(Text(request->organizational_unit()) == "plant-a");
  BOOST_TEST(Text(request->common_name()) == "acme issuing CA plant-a 1");
  BOOST_TEST(ToVector(Bytes(request->challenge())) == Counting(32, 0x60));

  const std::vector<uint8_t> csr_bytes = Sample<wire::PlantCaCsr>();
  const wire::PlantCaCsr* csr = DecodeBothWays<wire::PlantCaCsr>(csr_bytes, envelope);
  BOOST_TEST(Text(csr->request_id()) == "plant-a/acme/1");
  BOOST_TEST(Text(csr->csr()).starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
}

BOOST_AUTO_TEST_CASE(CertificateBudgetRequestAndGrantRoundTripWithEveryField) {
  std::vector<uint8_t> envelope;
  const std::vector<uint8_t> request_bytes = Sample<wire::CertificateBudgetRequest>();
  const auto* request = DecodeBothWays<wire::CertificateBudgetRequest>(request_bytes, envelope);
  BOOST_TEST(Text(request->request_id()) == "plant-a-0011");
  BOOST_TEST(Text(request->oem()) == "acme");
  BOOST_TEST(request->count() == 750u);

  const std::vector<uint8_t> grant_bytes = Sample<wire::CertificateBudgetGrant>();
  const auto* grant = DecodeBothWays<wire::CertificateBudgetGrant>(grant_bytes, envelope);
  BOOST_TEST(Text(grant->request_id()) == "plant-a-0011");
  BOOST_TEST(Text(grant->grant_id()) == "plant-a/acme/3");
  BOOST_TEST(Text(grant->plant()) == "plant-a");
  BOOST_TEST(Text(grant->oem()) == "acme");
  BOOST_TEST(grant->count() == 700u);
}

BOOST_AUTO_TEST_CASE(VerificationRequestRoundTripsWithEveryField) {
  const std::vector<uint8_t> bytes = Sample<wire::VerificationRequest>();
  std::vector<uint8_t> envelope;
  const auto* request = DecodeBothWays<wire::VerificationRequest>(bytes, envelope);
  BOOST_TEST(Text(request->barrier_id()) == "barrier-acme-0017");
  BOOST_TEST(Text(request->oem()) == "acme");
}

BOOST_AUTO_TEST_CASE(StockRequestRoundTripsWithEveryField) {
  const std::vector<uint8_t> bytes = Sample<wire::StockRequest>();
  std::vector<uint8_t> envelope;
  const auto* request = DecodeBothWays<wire::StockRequest>(bytes, envelope);
  BOOST_TEST(Text(request->request_id()) == "req-7");
  BOOST_TEST(Text(request->product()) == "acme-bcm-2027");
  BOOST_TEST(request->count() == 400u);
}

BOOST_AUTO_TEST_CASE(PlantStatusRoundTripsWithEveryField) {
  const std::vector<uint8_t> bytes = Sample<wire::PlantStatus>();
  std::vector<uint8_t> envelope;
  const auto* status = DecodeBothWays<wire::PlantStatus>(bytes, envelope);
  BOOST_TEST(Text(status->plant()) == "plant-a");
  BOOST_TEST(status->config_version() == 42u);
  BOOST_REQUIRE(status->stock() != nullptr);
  BOOST_REQUIRE(status->stock()->size() == 2u);
  const wire::ProductStock* bcm = status->stock()->Get(0);
  BOOST_TEST(Text(bcm->product()) == "acme-bcm-2027");
  BOOST_TEST(bcm->in_stock() == 97u);
  BOOST_TEST(bcm->reserved() == 3u);
  BOOST_TEST(bcm->requested() == 400u);
  BOOST_TEST(bcm->injected() == 1500u);
  BOOST_TEST(bcm->burned() == 2u);
  BOOST_REQUIRE(status->queues() != nullptr);
  BOOST_REQUIRE(status->queues()->size() == 2u);
  const wire::QueueDepth* records = status->queues()->Get(0);
  BOOST_TEST(Text(records->peer()) == "kms");
  BOOST_TEST(Text(records->stream()) == "records");
  BOOST_TEST(records->depth() == 12u);
  BOOST_TEST(records->oldest_age_s() == 35u);
  BOOST_REQUIRE(status->certificate_budgets() != nullptr);
  BOOST_REQUIRE(status->certificate_budgets()->size() == 1u);
  const wire::CertificateBudgetLevel* budget = status->certificate_budgets()->Get(0);
  BOOST_TEST(Text(budget->oem()) == "acme");
  BOOST_TEST(budget->granted() == 2000u);
  BOOST_TEST(budget->issued() == 1400u);
  BOOST_TEST(budget->pending() == 5u);
  BOOST_TEST(budget->requested() == 600u);
}

BOOST_AUTO_TEST_CASE(VerificationWatermarkRoundTripsWithEveryField) {
  const std::vector<uint8_t> bytes = Sample<wire::VerificationWatermark>();
  std::vector<uint8_t> envelope;
  const auto* watermark = DecodeBothWays<wire::VerificationWatermark>(bytes, envelope);
  BOOST_TEST(Text(watermark->barrier_id()) == "barrier-acme-0017");
  BOOST_TEST(watermark->last_record_sequence() == 123456789u);
}

BOOST_AUTO_TEST_CASE(ConfigUpdateWithoutOptionalPartsReadsAsDefaults) {
  // What an older KMS (or a minimal one) sends: only the version. Readers see defaults.
  flatbuffers::FlatBufferBuilder fbb;
  wire::ConfigUpdateBuilder config(fbb);
  config.add_version(3);
  fbb.Finish(config.Finish());
  StatusOr<const wire::ConfigUpdate*> decoded =
      DecodeMessage<wire::ConfigUpdate>(FinishedBytes(fbb));
  BOOST_REQUIRE(decoded.ok());
  BOOST_TEST((*decoded)->version() == 3u);
  BOOST_TEST((*decoded)->products() == nullptr);
  BOOST_TEST((*decoded)->sync() == nullptr);
  BOOST_TEST(Text((*decoded)->plant()).empty());
}

KEYLINE_CORRUPTION_TESTS(StockBatch)
KEYLINE_CORRUPTION_TESTS(ConfigUpdate)
KEYLINE_CORRUPTION_TESTS(VerificationRequest)
KEYLINE_CORRUPTION_TESTS(StockRequest)
KEYLINE_CORRUPTION_TESTS(PlantStatus)
KEYLINE_CORRUPTION_TESTS(VerificationWatermark)
KEYLINE_CORRUPTION_TESTS(PlantCaRequest)
KEYLINE_CORRUPTION_TESTS(PlantCaCsr)
KEYLINE_CORRUPTION_TESTS(CertificateBudgetRequest)
KEYLINE_CORRUPTION_TESTS(CertificateBudgetGrant)

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas::testing

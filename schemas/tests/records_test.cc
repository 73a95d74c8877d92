// records.fbs: the signed InjectionRecord round-trips, its signature covers exactly the body
// bytes, and a damaged record or body is refused.
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "corruption.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "samples.h"

namespace keyline::schemas::testing {
namespace {

std::vector<uint8_t> ToVector(std::span<const uint8_t> bytes) {
  return {bytes.begin(), bytes.end()};
}

BOOST_AUTO_TEST_SUITE(Records)

BOOST_AUTO_TEST_CASE(InjectionRecordRoundTripsWithEveryField) {
  const std::vector<uint8_t> bytes = Sample<wire::InjectionRecord>();
  StatusOr<VerifiedRecord> record = DecodeInjectionRecord(bytes);
  BOOST_REQUIRE_MESSAGE(record.ok(), record.status().ToString());
  BOOST_TEST(Text(record->record->signer()) == "pks-plant-a-2026");
  BOOST_TEST(ToVector(record->signature) == Counting(kSignatureBytes, 0x80));

  const wire::InjectionRecordBody* body = record->body;
  BOOST_REQUIRE(body != nullptr);
  BOOST_TEST(body->record_sequence() == 1001u);
  BOOST_TEST(Text(body->plant()) == "plant-a");
  BOOST_TEST(Text(body->station()) == "line1-eol1");
  BOOST_TEST(Text(body->product()) == "acme-bcm-2027");
  BOOST_TEST(Text(body->key_set_id()) == "ks-acme-0001");
  BOOST_TEST(ToVector(Bytes(body->ecu_uid())) == Counting(kEcuUidBytes, 1));
  BOOST_TEST((body->outcome() == wire::RecordOutcome::INJECTED));
  BOOST_TEST(Text(body->burn_reason()).empty());
  BOOST_TEST(body->injected_at_us() == 1764086401500000);
  BOOST_REQUIRE(body->slots() != nullptr);
  BOOST_REQUIRE(body->slots()->size() == 2u);
  const wire::RecordSlot* key1 = body->slots()->Get(1);
  BOOST_TEST(key1->slot() == 4);
  BOOST_TEST(key1->auth_slot() == 1);
  BOOST_TEST(key1->counter() == 8u);
  BOOST_TEST(key1->flags() == 0);
  BOOST_TEST(ToVector(Bytes(key1->m4())) == Counting(kM4Bytes, 0x90));
  BOOST_TEST(ToVector(Bytes(key1->m5())) == Counting(kM5Bytes, 0xe0));
}

BOOST_AUTO_TEST_CASE(SignedBytesAreExactlyTheBodyAsSerialised) {
  // The signer signs SampleInjectionRecordBody(); the verifier must see the same bytes.
  const std::vector<uint8_t> body = SampleInjectionRecordBody();
  const std::vector<uint8_t> bytes = Sample<wire::InjectionRecord>();
  StatusOr<VerifiedRecord> record = DecodeInjectionRecord(bytes);
  BOOST_REQUIRE(record.ok());
  BOOST_TEST(ToVector(record->signed_bytes) == body);
  // The body sits 8-byte aligned in the record, so its 64-bit fields are aligned too.
  BOOST_TEST((record->signed_bytes.data() - bytes.data()) % 8 == 0);
}

BOOST_AUTO_TEST_CASE(RecordTravelsInAnEnvelope) {
  const std::vector<uint8_t> envelope = SampleEnvelope<wire::InjectionRecord>();
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(envelope);
  BOOST_REQUIRE(decoded.ok());
  StatusOr<VerifiedRecord> record = DecodeInjectionRecord(decoded->payload);
  BOOST_REQUIRE(record.ok());
  BOOST_TEST(record->body->record_sequence() == 1001u);
}

BOOST_AUTO_TEST_CASE(BurnedRecordCarriesItsReason) {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> uid = Counting(kEcuUidBytes, 9);
  fbb.Finish(wire::CreateInjectionRecordBodyDirect(
      fbb, 1002, "plant-a", "line1-eol1", "acme-bcm-2027", "ks-acme-0002", &uid,
      wire::RecordOutcome::BURNED, "reservation timed out after 120 s", 1764086500000000));
  const std::vector<uint8_t> bytes =
      BuildInjectionRecord(FinishedBytes(fbb), "pks-plant-a-2026", Counting(kSignatureBytes, 0));
  StatusOr<VerifiedRecord> record = DecodeInjectionRecord(bytes);
  BOOST_REQUIRE(record.ok());
  BOOST_TEST((record->body->outcome() == wire::RecordOutcome::BURNED));
  BOOST_TEST(Text(record->body->burn_reason()) == "reservation timed out after 120 s");
  BOOST_TEST(record->body->slots() == nullptr);
}

BOOST_AUTO_TEST_CASE(TruncatedRecordBodyIsRejected) {
  // A body cut short, then wrapped (and signed) as if whole: the nested Verifier refuses it.
  const std::vector<uint8_t> body = SampleInjectionRecordBody();
  for (size_t length = 1; length + kMaxTailPadding < body.size(); ++length) {
    const std::vector<uint8_t> bytes =
        BuildInjectionRecord(std::span<const uint8_t>(body.data(), length), "pks-plant-a-2026",
                             Counting(kSignatureBytes, 0x80));
    DecodeError why{};
    StatusOr<VerifiedRecord> record = DecodeInjectionRecord(bytes, {}, &why);
    BOOST_TEST_CONTEXT("body cut to " << length << " of " << body.size() << " bytes") {
      BOOST_TEST(!record.ok());
      BOOST_TEST((why == DecodeError::kMalformed));
      BOOST_TEST(Contains(record.status().message(), "InjectionRecord: buffer of"));
    }
  }
}

BOOST_AUTO_TEST_CASE(RecordWithGarbageBodyIsRejected) {
  const std::vector<uint8_t> bytes = BuildInjectionRecord(Counting(200, 0x33), "pks-plant-a-2026",
                                                          Counting(kSignatureBytes, 0x80));
  DecodeError why{};
  StatusOr<VerifiedRecord> record = DecodeInjectionRecord(bytes, {}, &why);
  BOOST_REQUIRE(!record.ok());
  BOOST_TEST((why == DecodeError::kMalformed));
}

BOOST_AUTO_TEST_CASE(RecordWithoutBodyIsRejected) {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> signature = Counting(kSignatureBytes, 0x80);
  fbb.Finish(wire::CreateInjectionRecordDirect(fbb, nullptr, "pks-plant-a-2026", &signature));
  DecodeError why{};
  StatusOr<VerifiedRecord> record = DecodeInjectionRecord(FinishedBytes(fbb), {}, &why);
  BOOST_REQUIRE(!record.ok());
  BOOST_TEST((why == DecodeError::kInvalidField));
  BOOST_TEST(record.status().message() == "InjectionRecord: body is missing or empty");
}

BOOST_AUTO_TEST_CASE(RecordWithEmptyBodyIsRejected) {
  // Present but empty: too short to be a FlatBuffer, so the nested Verifier refuses it.
  const std::vector<uint8_t> bytes =
      BuildInjectionRecord({}, "pks-plant-a-2026", Counting(kSignatureBytes, 0x80));
  DecodeError why{};
  StatusOr<VerifiedRecord> record = DecodeInjectionRecord(bytes, {}, &why);
  BOOST_REQUIRE(!record.ok());
  BOOST_TEST((why == DecodeError::kMalformed));
}

BOOST_AUTO_TEST_CASE(RecordWithShortSignatureIsRejected) {
  const std::vector<uint8_t> bytes = BuildInjectionRecord(
      SampleInjectionRecordBody(), "pks-plant-a-2026", Counting(kSignatureBytes - 1, 0x80));
  DecodeError why{};
  StatusOr<VerifiedRecord> record = DecodeInjectionRecord(bytes, {}, &why);
  BOOST_REQUIRE(!record.ok());
  BOOST_TEST((why == DecodeError::kInvalidField));
  BOOST_TEST(record.status().message() == "InjectionRecord: signature: expected 64 bytes, got 63");
}

BOOST_AUTO_TEST_CASE(RecordWithoutSignatureIsRejected) {
  const std::vector<uint8_t> bytes =
      BuildInjectionRecord(SampleInjectionRecordBody(), "pks-plant-a-2026", {});
  DecodeError why{};
  StatusOr<VerifiedRecord> record = DecodeInjectionRecord(bytes, {}, &why);
  BOOST_REQUIRE(!record.ok());
  BOOST_TEST((why == DecodeError::kInvalidField));
  BOOST_TEST(Contains(record.status().message(), "signature: expected 64 bytes, got 0"));
}

KEYLINE_CORRUPTION_TESTS(InjectionRecord)

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas::testing

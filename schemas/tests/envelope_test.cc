// envelope.fbs: the envelope round-trips, every message type travels in it, and the receiver's
// checks (type known, message id, payload present and of the named table) refuse with a reason.
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

// An envelope built field by field, for the cases BuildEnvelope would never produce.
struct RawEnvelope {
  std::vector<uint8_t> message_id = Counting(kMessageIdBytes, 0xe0);
  bool with_message_id = true;
  uint16_t type = static_cast<uint16_t>(wire::MessageType::StockRequest);
  std::vector<uint8_t> payload = Sample<wire::StockRequest>();
  bool with_payload = true;

  std::vector<uint8_t> Build() const {
    flatbuffers::FlatBufferBuilder fbb;
    auto payload_offset = with_payload ? CreateBytes(fbb, payload) : 0;
    auto id_offset = with_message_id ? CreateBytes(fbb, message_id) : 0;
    wire::EnvelopeBuilder envelope(fbb);
    if (with_message_id) envelope.add_message_id(id_offset);
    envelope.add_sequence(5);
    envelope.add_type(static_cast<wire::MessageType>(type));
    if (with_payload) envelope.add_payload(payload_offset);
    fbb.Finish(envelope.Finish());
    std::span<const uint8_t> bytes = FinishedBytes(fbb);
    return {bytes.begin(), bytes.end()};
  }
};

BOOST_AUTO_TEST_SUITE(EnvelopeTests)

BOOST_AUTO_TEST_CASE(EnvelopeRoundTripsWithEveryHeaderField) {
  const std::vector<uint8_t> payload = Sample<wire::StockRequest>();
  const std::vector<uint8_t> bytes =
      BuildEnvelope(SampleHeader(wire::MessageType::StockRequest), payload);
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes);
  BOOST_REQUIRE_MESSAGE(decoded.ok(), decoded.status().ToString());
  const wire::Envelope* envelope = decoded->envelope;
  BOOST_TEST(ToVector(Bytes(envelope->message_id())) == Counting(kMessageIdBytes, 0xe0));
  BOOST_TEST(ToVector(decoded->message_id) == Counting(kMessageIdBytes, 0xe0));
  BOOST_TEST(Text(envelope->stream()) == "records");
  BOOST_TEST(envelope->sequence() == 17u);
  BOOST_TEST((envelope->type() == wire::MessageType::StockRequest));
  BOOST_TEST((decoded->type == wire::MessageType::StockRequest));
  BOOST_TEST(Text(envelope->sender()) == "plant-a");
  BOOST_TEST(envelope->created_at_us() == 1764086400123456);
  BOOST_TEST(ToVector(decoded->payload) == payload);
}

BOOST_AUTO_TEST_CASE(EveryMessageTypeTravelsInAnEnvelope) {
  int types = 0;
  ForEachMessageTable([&]<typename T>() {
    ++types;
    const std::vector<uint8_t> bytes = SampleEnvelope<T>();
    StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes);
    BOOST_TEST_CONTEXT(MessageTraits<T>::kName) {
      BOOST_REQUIRE_MESSAGE(decoded.ok(), decoded.status().ToString());
      BOOST_TEST((decoded->type == MessageTraits<T>::kType));
      BOOST_TEST(ToVector(decoded->payload) == Sample<T>());
      BOOST_TEST(PayloadAs<T>(*decoded).ok());
      BOOST_TEST(MessageTypeName(decoded->type) == std::string(MessageTraits<T>::kName));
    }
  });
  // One table per MessageType value: a new value without a table here fails this count.
  BOOST_TEST(types == static_cast<int>(wire::MessageType::MAX));
}

BOOST_AUTO_TEST_CASE(PayloadIsEightByteAlignedInTheEnvelope) {
  ForEachMessageTable([]<typename T>() {
    const std::vector<uint8_t> bytes = SampleEnvelope<T>();
    StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes);
    BOOST_REQUIRE(decoded.ok());
    BOOST_TEST((decoded->payload.data() - bytes.data()) % 8 == 0, MessageTraits<T>::kName);
  });
}

BOOST_AUTO_TEST_CASE(PayloadPlacedWithoutAlignmentStillDecodesAndReads) {
  // A sender that writes the payload with a plain CreateVector (4-byte aligned) is still
  // understood: the Verifier checks alignment relative to the payload, and FlatBuffers reads
  // scalars without assuming address alignment (UBSan in the test build would object).
  const std::vector<uint8_t> payload = Sample<wire::VerificationWatermark>();
  bool found_misaligned = false;
  for (int padding = 0; padding < 8 && !found_misaligned; ++padding) {
    flatbuffers::FlatBufferBuilder fbb;
    auto stream = fbb.CreateString(std::string(static_cast<size_t>(padding), 's'));
    auto payload_offset = fbb.CreateVector(payload.data(), payload.size());
    auto id = CreateBytes(fbb, Counting(kMessageIdBytes, 0));
    fbb.Finish(wire::CreateEnvelope(fbb, id, stream, 1, wire::MessageType::VerificationWatermark, 0,
                                    0, payload_offset));
    const std::vector<uint8_t> bytes(fbb.GetBufferPointer(),
                                     fbb.GetBufferPointer() + fbb.GetSize());
    StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes);
    BOOST_REQUIRE_MESSAGE(decoded.ok(), decoded.status().ToString());
    if ((decoded->payload.data() - bytes.data()) % 8 == 0) continue;
    found_misaligned = true;
    StatusOr<const wire::VerificationWatermark*> watermark =
        PayloadAs<wire::VerificationWatermark>(*decoded);
    BOOST_REQUIRE(watermark.ok());
    BOOST_TEST((*watermark)->last_record_sequence() == 123456789u);
  }
  BOOST_TEST(found_misaligned);
}

BOOST_AUTO_TEST_CASE(UnknownMessageTypeIsRejectedAsUnknown) {
  for (uint16_t type : {uint16_t{19}, uint16_t{4242}, uint16_t{65535}}) {
    RawEnvelope raw;
    raw.type = type;
    DecodeError why{};
    const std::vector<uint8_t> bytes = raw.Build();
    StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes, {}, &why);
    BOOST_TEST_CONTEXT("type " << type) {
      BOOST_REQUIRE(!decoded.ok());
      BOOST_TEST((why == DecodeError::kUnknownType));
      BOOST_TEST(decoded.status().message() ==
                 "Envelope #5 (MessageType " + std::to_string(type) +
                     "): unknown message type (this build knows 1..18; a newer sender needs a "
                     "newer receiver)");
    }
  }
}

BOOST_AUTO_TEST_CASE(NoneMessageTypeIsRejectedAsUnknown) {
  RawEnvelope raw;
  raw.type = 0;
  DecodeError why{};
  const std::vector<uint8_t> bytes = raw.Build();
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes, {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kUnknownType));
  BOOST_TEST(Contains(decoded.status().message(), "Envelope #5 (NONE): unknown message type"));
}

BOOST_AUTO_TEST_CASE(VerifyPayloadRefusesUnknownTypes) {
  const std::vector<uint8_t> payload = Sample<wire::StockRequest>();
  for (auto type : {wire::MessageType::NONE, static_cast<wire::MessageType>(19)}) {
    DecodeError why{};
    Status status = VerifyPayload(type, payload, {}, &why);
    BOOST_TEST(!status.ok());
    BOOST_TEST((why == DecodeError::kUnknownType));
  }
}

BOOST_AUTO_TEST_CASE(MissingMessageIdIsRejected) {
  RawEnvelope raw;
  raw.with_message_id = false;
  DecodeError why{};
  const std::vector<uint8_t> bytes = raw.Build();
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes, {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kInvalidField));
  BOOST_TEST(decoded.status().message() ==
             "Envelope #5 (StockRequest): message_id: missing (expected 16 bytes)");
}

BOOST_AUTO_TEST_CASE(ShortMessageIdIsRejected) {
  RawEnvelope raw;
  raw.message_id = Counting(kMessageIdBytes - 1, 0);
  DecodeError why{};
  const std::vector<uint8_t> bytes = raw.Build();
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes, {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kInvalidField));
  BOOST_TEST(decoded.status().message() ==
             "Envelope #5 (StockRequest): message_id: expected 16 bytes, got 15");
}

BOOST_AUTO_TEST_CASE(MissingPayloadIsRejected) {
  RawEnvelope raw;
  raw.with_payload = false;
  DecodeError why{};
  const std::vector<uint8_t> bytes = raw.Build();
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes, {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kInvalidField));
  BOOST_TEST(decoded.status().message() ==
             "Envelope #5 (StockRequest): payload is missing or empty");
}

BOOST_AUTO_TEST_CASE(VerificationWatermarkSentAsStockRequestIsRejected) {
  // StockRequest's second field is a string; VerificationWatermark's is a ulong, which read as
  // an offset points far outside the payload. The Verifier must refuse, not follow it.
  RawEnvelope raw;
  raw.payload = Sample<wire::VerificationWatermark>();
  DecodeError why{};
  const std::vector<uint8_t> bytes = raw.Build();
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes, {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kMalformed));
  BOOST_TEST(decoded.status().message() ==
             "Envelope #5 (StockRequest): payload: StockRequest: buffer of " +
                 std::to_string(raw.payload.size()) +
                 " bytes failed FlatBuffers verification (truncated, corrupt, or another table)");
}

BOOST_AUTO_TEST_CASE(PayloadAsAnotherTableIsRefusedWithoutReadingIt) {
  const std::vector<uint8_t> bytes = SampleEnvelope<wire::KeyPackageRequest>();
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes);
  BOOST_REQUIRE(decoded.ok());
  StatusOr<const wire::KeyPackage*> wrong = PayloadAs<wire::KeyPackage>(*decoded);
  BOOST_REQUIRE(!wrong.ok());
  BOOST_TEST(wrong.status().message() == "Envelope holds KeyPackageRequest, not KeyPackage");
  BOOST_TEST(PayloadAs<wire::KeyPackageRequest>(*decoded).ok());
  BOOST_TEST(!PayloadAs<wire::KeyPackageRequest>(VerifiedEnvelope{}).ok());
}

BOOST_AUTO_TEST_CASE(FieldsFromANewerSenderAreIgnored) {
  // Versioning rule 1: a newer release appends a field (id 7, a ulong) to Envelope. This
  // release verifies the envelope and reads every field it knows.
  flatbuffers::FlatBufferBuilder fbb;
  auto payload = CreateBytes(fbb, Sample<wire::StockRequest>());
  auto id = CreateBytes(fbb, Counting(kMessageIdBytes, 0xe0));
  wire::EnvelopeBuilder envelope(fbb);
  envelope.add_message_id(id);
  envelope.add_sequence(9);
  envelope.add_type(wire::MessageType::StockRequest);
  envelope.add_payload(payload);
  constexpr flatbuffers::voffset_t kFutureField7 = 4 + 2 * 7;
  fbb.AddElement<uint64_t>(kFutureField7, 0xfeedfacecafebeefULL, 0);
  fbb.Finish(envelope.Finish());
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(FinishedBytes(fbb));
  BOOST_REQUIRE_MESSAGE(decoded.ok(), decoded.status().ToString());
  BOOST_TEST(decoded->envelope->sequence() == 9u);
  BOOST_TEST(PayloadAs<wire::StockRequest>(*decoded).ok());
}

BOOST_AUTO_TEST_CASE(FieldsAnOlderSenderOmitsReadAsDefaults) {
  // Versioning rule 5: no stream, sender or timestamp; the envelope still decodes and the
  // absent fields read as their defaults. Whether that is acceptable is the receiver's call.
  RawEnvelope raw;
  const std::vector<uint8_t> bytes = raw.Build();
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(bytes);
  BOOST_REQUIRE(decoded.ok());
  BOOST_TEST(decoded->envelope->stream() == nullptr);
  BOOST_TEST(Text(decoded->envelope->sender()).empty());
  BOOST_TEST(decoded->envelope->created_at_us() == 0);
}

BOOST_AUTO_TEST_CASE(EmptyFrameIsRejectedAsEmpty) {
  DecodeError why{};
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(std::span<const uint8_t>(), {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kEmpty));
  BOOST_TEST(decoded.status().message() == "Envelope: empty buffer");
}

BOOST_AUTO_TEST_CASE(GarbageFrameIsRejectedAsMalformed) {
  std::mt19937 rng(kCorruptionSeed);
  BOOST_TEST_MESSAGE("garbage frames with seed " << kCorruptionSeed);
  for (int round = 0; round < 1000; ++round) {
    std::vector<uint8_t> garbage(1 + rng() % 300);
    for (uint8_t& b : garbage) b = static_cast<uint8_t>(rng());
    DecodeError why{};
    StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(garbage, {}, &why);
    BOOST_TEST_CONTEXT("round " << round << ", " << garbage.size() << " bytes") {
      BOOST_TEST(!decoded.ok());
      BOOST_TEST((why == DecodeError::kMalformed));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas::testing

// Corruption checks run against every message type, and the macro that names them per type.
//
// What must hold for any input: decoding never crashes or reads outside the buffer (the test
// build runs under ASan and UBSan), and a refusal carries a DecodeError and a message naming
// what was decoded. What must be refused: empty, oversize, truncated and garbage buffers.
// A random bit flip may leave a valid buffer (a flipped character in a string, say), so there
// the check is "refused, or decodes and every field reads safely".
#pragma once

#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "samples.h"

namespace keyline::schemas::testing {

// Seed of every randomised corruption test, printed by each so a failure can be replayed.
inline constexpr uint32_t kCorruptionSeed = 20261125;

// Most padding bytes the builder can leave at the end of a buffer (alignment is at most 8).
// Cutting only padding leaves a valid buffer; cutting anything more must be refused.
inline constexpr size_t kMaxTailPadding = 7;

inline bool Contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

inline EnvelopeHeader SampleHeader(wire::MessageType type) {
  EnvelopeHeader header;
  std::vector<uint8_t> id = Counting(kMessageIdBytes, 0xe0);
  std::copy(id.begin(), id.end(), header.message_id.begin());
  header.stream = "records";
  header.sequence = 17;
  header.type = type;
  header.sender = "plant-a";
  header.created_at_us = 1764086400123456;
  return header;
}

template <WireMessage T>
std::vector<uint8_t> SampleEnvelope() {
  return BuildEnvelope(SampleHeader(MessageTraits<T>::kType), Sample<T>());
}

// Decodes `bytes` (copied into an allocation of exactly their size, so ASan sees any overread)
// as a bare T. On success every field is read. Returns the Status.
template <WireMessage T>
Status DecodeBareAndRead(std::span<const uint8_t> bytes, DecodeError* why) {
  const std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  StatusOr<const T*> decoded = DecodeMessage<T>(copy, {}, why);
  if (!decoded.ok()) return decoded.status();
  [[maybe_unused]] volatile uint64_t sink = ReadAll(**decoded);
  if constexpr (std::is_same_v<T, wire::InjectionRecord>) {
    // The record's own decoder adds the body and signature checks on top.
    StatusOr<VerifiedRecord> record = DecodeInjectionRecord(copy, {}, why);
    if (!record.ok()) return record.status();
    sink = ReadAll(*record->body);
  }
  return Status::Ok();
}

// The same through DecodeEnvelope, reading the envelope and the payload as T.
template <WireMessage T>
Status DecodeEnvelopeAndRead(std::span<const uint8_t> bytes, DecodeError* why) {
  const std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  StatusOr<VerifiedEnvelope> envelope = DecodeEnvelope(copy, {}, why);
  if (!envelope.ok()) return envelope.status();
  [[maybe_unused]] volatile uint64_t sink = ReadAll(*envelope->envelope);
  if (envelope->type == MessageTraits<T>::kType) {
    StatusOr<const T*> payload = PayloadAs<T>(*envelope);
    BOOST_REQUIRE(payload.ok());
    sink = ReadAll(**payload);
  }
  return Status::Ok();
}

template <WireMessage T>
void ExpectTruncationsRejected() {
  const std::string name(MessageTraits<T>::kName);
  for (bool enveloped : {false, true}) {
    const std::vector<uint8_t> whole = enveloped ? SampleEnvelope<T>() : Sample<T>();
    size_t rejected = 0;
    for (size_t length = 0; length < whole.size(); ++length) {
      DecodeError why{};
      const std::span<const uint8_t> cut(whole.data(), length);
      Status status =
          enveloped ? DecodeEnvelopeAndRead<T>(cut, &why) : DecodeBareAndRead<T>(cut, &why);
      if (!status.ok()) ++rejected;
      if (length + kMaxTailPadding >= whole.size()) continue;  // may have cut padding only
      BOOST_TEST_CONTEXT(name << (enveloped ? " in envelope" : "") << " cut to " << length << " of "
                              << whole.size() << " bytes") {
        BOOST_TEST(!status.ok());
        if (!status.ok()) {
          BOOST_TEST((why == (length == 0 ? DecodeError::kEmpty : DecodeError::kMalformed)));
          BOOST_TEST(Contains(status.message(), enveloped ? "Envelope" : name));
          if (length > 0) BOOST_TEST(Contains(status.message(), "failed FlatBuffers verification"));
        }
      }
    }
    BOOST_TEST_MESSAGE(name << (enveloped ? " in envelope" : "") << ": " << rejected << " of "
                            << whole.size() << " truncations rejected");
  }
}

template <WireMessage T>
void ExpectBitFlipsRejectedOrSafe(uint32_t seed, int rounds = 2000) {
  const std::string name(MessageTraits<T>::kName);
  BOOST_TEST_MESSAGE(name << ": bit flips with seed " << seed);
  std::mt19937 rng(seed);
  for (bool enveloped : {false, true}) {
    const std::vector<uint8_t> whole = enveloped ? SampleEnvelope<T>() : Sample<T>();
    int rejected = 0;
    for (int round = 0; round < rounds; ++round) {
      std::vector<uint8_t> bytes = whole;
      const int flips = 1 + static_cast<int>(rng() % 3);
      for (int f = 0; f < flips; ++f) {
        bytes[rng() % bytes.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
      }
      DecodeError why{};
      Status status =
          enveloped ? DecodeEnvelopeAndRead<T>(bytes, &why) : DecodeBareAndRead<T>(bytes, &why);
      if (status.ok()) continue;
      ++rejected;
      BOOST_TEST_CONTEXT(name << " seed " << seed << " round " << round) {
        BOOST_TEST((why == DecodeError::kMalformed || why == DecodeError::kUnknownType ||
                    why == DecodeError::kInvalidField));
        BOOST_TEST(!status.message().empty());
      }
    }
    BOOST_TEST_MESSAGE(name << (enveloped ? " in envelope" : "") << ": " << rejected << " of "
                            << rounds << " bit-flipped buffers rejected, the rest decoded safely");
    // Flips in offsets and lengths are common enough that some must be caught.
    BOOST_TEST(rejected > 0);
  }
}

template <WireMessage T>
void ExpectGarbageRejected(uint32_t seed) {
  const std::string name(MessageTraits<T>::kName);
  BOOST_TEST_MESSAGE(name << ": garbage with seed " << seed);
  std::mt19937 rng(seed);
  for (size_t length : {1, 2, 3, 4, 5, 7, 8, 12, 16, 31, 64, 100, 257, 1024, 4096}) {
    std::vector<std::vector<uint8_t>> inputs = {std::vector<uint8_t>(length, 0x00),
                                                std::vector<uint8_t>(length, 0xff),
                                                std::vector<uint8_t>(length)};
    for (uint8_t& b : inputs.back()) b = static_cast<uint8_t>(rng());
    for (const std::vector<uint8_t>& garbage : inputs) {
      BOOST_TEST_CONTEXT(name << ": " << length << " garbage bytes starting " << int{garbage[0]}) {
        DecodeError why{};
        Status bare = DecodeBareAndRead<T>(garbage, &why);
        BOOST_TEST(!bare.ok());
        BOOST_TEST((why == DecodeError::kMalformed));
        BOOST_TEST(Contains(bare.message(), name + ": buffer of " + std::to_string(length) +
                                                " bytes failed FlatBuffers verification"));
        // The same garbage as the payload of a well-formed envelope.
        std::vector<uint8_t> envelope =
            BuildEnvelope(SampleHeader(MessageTraits<T>::kType), garbage);
        Status wrapped = DecodeEnvelopeAndRead<T>(envelope, &why);
        BOOST_TEST(!wrapped.ok());
        BOOST_TEST((why == DecodeError::kMalformed));
        BOOST_TEST(Contains(wrapped.message(), "payload: " + name));
      }
    }
  }
}

template <WireMessage T>
void ExpectEmptyRejected() {
  const std::string name(MessageTraits<T>::kName);
  DecodeError why{};
  StatusOr<const T*> decoded = DecodeMessage<T>(std::span<const uint8_t>(), {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kEmpty));
  BOOST_TEST(decoded.status().code() == StatusCode::kInvalidArgument);
  BOOST_TEST(decoded.status().message() == name + ": empty buffer");

  // An envelope of type T with an empty payload.
  std::vector<uint8_t> envelope = BuildEnvelope(SampleHeader(MessageTraits<T>::kType), {});
  StatusOr<VerifiedEnvelope> wrapped = DecodeEnvelope(envelope, {}, &why);
  BOOST_REQUIRE(!wrapped.ok());
  BOOST_TEST((why == DecodeError::kInvalidField));
  BOOST_TEST(Contains(wrapped.status().message(), "payload is missing or empty"));
}

template <WireMessage T>
void ExpectOversizeRejected() {
  const std::string name(MessageTraits<T>::kName);
  const std::vector<uint8_t> sample = Sample<T>();

  // A valid message padded past the default frame limit.
  std::vector<uint8_t> huge = sample;
  huge.resize(kMaxMessageBytes + 1, 0);
  DecodeError why{};
  StatusOr<const T*> decoded = DecodeMessage<T>(huge, {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kTooLarge));
  BOOST_TEST(decoded.status().code() == StatusCode::kResourceExhausted);
  BOOST_TEST(decoded.status().message() ==
             name + ": buffer of 1048577 bytes exceeds the 1048576-byte message limit");

  // The limit is the caller's: one byte under the sample's size refuses it, its size admits it.
  DecodeLimits tight;
  tight.max_bytes = sample.size() - 1;
  BOOST_TEST(!DecodeMessage<T>(sample, tight, &why).ok());
  BOOST_TEST((why == DecodeError::kTooLarge));
  tight.max_bytes = sample.size();
  BOOST_TEST(DecodeMessage<T>(sample, tight).ok());

  // An envelope over the limit is refused before its payload is looked at.
  const std::vector<uint8_t> envelope = SampleEnvelope<T>();
  tight.max_bytes = envelope.size() - 1;
  StatusOr<VerifiedEnvelope> wrapped = DecodeEnvelope(envelope, tight, &why);
  BOOST_REQUIRE(!wrapped.ok());
  BOOST_TEST((why == DecodeError::kTooLarge));
  BOOST_TEST(Contains(wrapped.status().message(), "Envelope: buffer of"));
}

// T's payload in envelopes that claim every other type: refused, or (when the other table
// happens to accept the bytes) decoded and read safely as that other table.
template <WireMessage T>
void ExpectPayloadUnderOtherTypesRejectedOrSafe() {
  const std::vector<uint8_t> payload = Sample<T>();
  int rejected = 0;
  int others = 0;
  for (auto type : wire::EnumValuesMessageType()) {
    if (type == MessageTraits<T>::kType || type == wire::MessageType::NONE) continue;
    ++others;
    const std::vector<uint8_t> envelope = BuildEnvelope(SampleHeader(type), payload);
    DecodeError why{};
    StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(envelope, {}, &why);
    if (!decoded.ok()) {
      ++rejected;
      BOOST_TEST((why == DecodeError::kMalformed));
      BOOST_TEST(Contains(decoded.status().message(), "payload: " + MessageTypeName(type)));
      continue;
    }
    // Accepted as the other type: reading it must be safe, and asking for T must fail.
    BOOST_TEST(!PayloadAs<T>(*decoded).ok());
    BOOST_TEST(VerifyPayload(type, decoded->payload).ok());
  }
  BOOST_TEST_MESSAGE(MessageTraits<T>::kName << " under " << others << " other types: " << rejected
                                             << " rejected by the Verifier");
}

}  // namespace keyline::schemas::testing

// The corruption tests for one message table, named for the behaviour they prove.
#define KEYLINE_CORRUPTION_TESTS(Table)                                                \
  BOOST_AUTO_TEST_CASE(Truncated##Table##IsRejected) {                                 \
    ::keyline::schemas::testing::ExpectTruncationsRejected<::keyline::wire::Table>();  \
  }                                                                                    \
  BOOST_AUTO_TEST_CASE(BitFlipped##Table##IsRejectedOrDecodesSafely) {                 \
    ::keyline::schemas::testing::ExpectBitFlipsRejectedOrSafe<::keyline::wire::Table>( \
        ::keyline::schemas::testing::kCorruptionSeed);                                 \
  }                                                                                    \
  BOOST_AUTO_TEST_CASE(Garbage##Table##IsRejected) {                                   \
    ::keyline::schemas::testing::ExpectGarbageRejected<::keyline::wire::Table>(        \
        ::keyline::schemas::testing::kCorruptionSeed);                                 \
  }                                                                                    \
  BOOST_AUTO_TEST_CASE(Empty##Table##IsRejected) {                                     \
    ::keyline::schemas::testing::ExpectEmptyRejected<::keyline::wire::Table>();        \
  }                                                                                    \
  BOOST_AUTO_TEST_CASE(Oversize##Table##IsRejected) {                                  \
    ::keyline::schemas::testing::ExpectOversizeRejected<::keyline::wire::Table>();     \
  }                                                                                    \
  BOOST_AUTO_TEST_CASE(Table##UnderAnotherTypeIsRejectedOrDecodesSafely) {             \
    ::keyline::schemas::testing::ExpectPayloadUnderOtherTypesRejectedOrSafe<           \
        ::keyline::wire::Table>();                                                     \
  }

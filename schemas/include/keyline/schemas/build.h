// Small helpers for writing Keyline FlatBuffers. Message tables themselves are built with the
// generated Create<Table>() functions; these cover what every sender repeats: byte vectors, the
// Envelope around a payload, and the signed InjectionRecord around its body.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keyline/schemas/fields.h"
#include "keyline/schemas/message_types.h"

namespace keyline::schemas {

// A [ubyte] field from a span (an empty span still writes an empty vector).
flatbuffers::Offset<flatbuffers::Vector<uint8_t>> CreateBytes(flatbuffers::FlatBufferBuilder& fbb,
                                                              std::span<const uint8_t> bytes);

// The finished buffer of `fbb`; valid until `fbb` is changed or destroyed.
// Precondition: fbb.Finish() was called.
std::span<const uint8_t> FinishedBytes(const flatbuffers::FlatBufferBuilder& fbb);

// Everything in an Envelope except the payload.
struct EnvelopeHeader {
  std::array<uint8_t, kMessageIdBytes> message_id{};  // 16 random bytes, drawn by the sender
  std::string stream;                                 // stream within the link
  uint64_t sequence = 0;                              // position in the stream, from 1
  wire::MessageType type = wire::MessageType::NONE;   // the table `payload` holds
  std::string sender;                                 // the sender's own identity
  int64_t created_at_us = 0;                          // microseconds since the Unix epoch
};

// A finished Envelope holding a copy of `payload`. The payload is placed 8-byte aligned within
// the envelope, so its 64-bit fields are aligned wherever the envelope buffer is.
std::vector<uint8_t> BuildEnvelope(const EnvelopeHeader& header, std::span<const uint8_t> payload);

// The header for sending T: type filled in from T.
template <WireMessage T>
EnvelopeHeader HeaderFor(EnvelopeHeader header) {
  header.type = MessageTraits<T>::kType;
  return header;
}

// A finished InjectionRecord around an already serialised InjectionRecordBody and the
// signature over exactly those bytes (signed by hsm-adapter; nothing here signs).
std::vector<uint8_t> BuildInjectionRecord(std::span<const uint8_t> body, std::string_view signer,
                                          std::span<const uint8_t> signature);

}  // namespace keyline::schemas

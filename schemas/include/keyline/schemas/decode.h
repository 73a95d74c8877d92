// The one way to read a Keyline FlatBuffer that came from a peer or from disk.
//
// Every function here refuses, with a Status naming what was decoded and why, a buffer that is
// empty, larger than the frame limit, or fails the FlatBuffers Verifier; after that, reading
// any field of the returned table stays inside the buffer. Nothing here crashes, asserts or
// reads out of bounds on any input.
//
// The returned pointers and spans point into the caller's buffer: they are valid as long as
// that buffer is, and nothing is copied.
//
// A receiver that counts refusals by reason passes a DecodeError* and indexes its counters
// with it:
//
//   schemas::DecodeError why;
//   auto envelope = schemas::DecodeEnvelope(frame, limits, &why);
//   if (!envelope.ok()) {
//     ++refused_[static_cast<size_t>(why)];
//     LOG_WARN("refused a frame from {}: {}", peer, envelope.status());
//     continue;
//   }
//   if (envelope->type == wire::MessageType::KeyPackageRequest) {
//     ASSIGN_OR_RETURN(const wire::KeyPackageRequest* request,
//                      schemas::PayloadAs<wire::KeyPackageRequest>(*envelope));
//     ...
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/schemas/fields.h"
#include "keyline/schemas/message_types.h"

namespace keyline::wire {
struct LinkFrame;
}  // namespace keyline::wire

namespace keyline::schemas {

// Largest frame a receiver accepts by default: 1 MiB. A StockBatch is the largest message;
// a PKS asks for stock in batches that stay well below this.
inline constexpr size_t kMaxMessageBytes = size_t{1} << 20;

// Why a buffer was refused. Values are stable (append only): receivers keep one counter each.
enum class DecodeError : uint8_t {
  kEmpty = 0,         // zero bytes
  kTooLarge = 1,      // more than DecodeLimits::max_bytes
  kMalformed = 2,     // the FlatBuffers Verifier refused it: truncated, corrupt, or another table
  kUnknownType = 3,   // Envelope.type is NONE or newer than this build
  kInvalidField = 4,  // verified, but a field the decoder needs is missing or of the wrong size
};
inline constexpr size_t kDecodeErrorCount = 5;

// Stable lower-case name for metrics and logs: "empty", "too_large", "malformed",
// "unknown_type", "invalid_field".
std::string_view DecodeErrorName(DecodeError error);

// Limits applied while decoding; the defaults suit every Keyline link.
struct DecodeLimits {
  // Buffers larger than this are refused before the Verifier runs. Default kMaxMessageBytes.
  size_t max_bytes = kMaxMessageBytes;
  // Deepest nesting of tables accepted (ours nest at most 3 deep). Default 16.
  uint32_t max_depth = 16;
  // Most tables the Verifier visits in one buffer; bounds the work a hostile buffer can cause.
  // Default 100000 (a full 1 MiB StockBatch holds about 4000).
  uint32_t max_tables = 100000;
};

namespace internal {
// Refuses empty and oversize buffers.
Status CheckFrameSize(std::span<const uint8_t> bytes, std::string_view what,
                      const DecodeLimits& limits, DecodeError* error);
Status MalformedError(std::span<const uint8_t> bytes, std::string_view what, DecodeError* error);
flatbuffers::Verifier::Options VerifierOptions(const DecodeLimits& limits);

// What the Verifier leaves unchecked in a union: it accepts a type that names a table with no
// value (the generated body_as_X() then returns null) and a value whose type is NONE (which
// minireflect follows anyway). The tables holding a union refuse both (kInvalidField); every
// other table has nothing to check.
template <typename T>
Status CheckUnions(const T&, std::string_view, DecodeError*) {
  return Status::Ok();
}
Status CheckUnions(const wire::AdminRequest& request, std::string_view what, DecodeError* error);
Status CheckUnions(const wire::LinkFrame& frame, std::string_view what, DecodeError* error);
}  // namespace internal

// Verifies `bytes` as a FlatBuffer whose root is the table T and returns that root. A union in
// the root (AdminRequest.command, LinkFrame.body) has a value exactly when its type names a
// table this build knows, so the generated <field>_as_<Type>() never returns null for the type
// the <field>_type() accessor reports.
// `what` names the buffer in errors ("KeyPackageRequest", "records/17"); on failure the Status
// reads e.g. "KeyPackageRequest: buffer of 12 bytes failed FlatBuffers verification ..." and,
// when `error` is not null, *error says why. `error` is left untouched on success.
template <typename T>
[[nodiscard]] StatusOr<const T*> DecodeVerified(std::span<const uint8_t> bytes,
                                                std::string_view what,
                                                const DecodeLimits& limits = {},
                                                DecodeError* error = nullptr) {
  RETURN_IF_ERROR(internal::CheckFrameSize(bytes, what, limits, error));
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), internal::VerifierOptions(limits));
  if (!verifier.VerifyBuffer<T>(nullptr)) return internal::MalformedError(bytes, what, error);
  const T* root = flatbuffers::GetRoot<T>(bytes.data());
  RETURN_IF_ERROR(internal::CheckUnions(*root, what, error));
  return root;
}

// The result would point into a vector destroyed at the end of the call: keep the bytes alive.
template <typename T>
StatusOr<const T*> DecodeVerified(std::vector<uint8_t>&& bytes, std::string_view what,
                                  const DecodeLimits& limits = {},
                                  DecodeError* error = nullptr) = delete;

// DecodeVerified for a message table, named by its type in errors.
template <WireMessage T>
[[nodiscard]] StatusOr<const T*> DecodeMessage(std::span<const uint8_t> bytes,
                                               const DecodeLimits& limits = {},
                                               DecodeError* error = nullptr) {
  return DecodeVerified<T>(bytes, MessageTraits<T>::kName, limits, error);
}

template <WireMessage T>
StatusOr<const T*> DecodeMessage(std::vector<uint8_t>&& bytes, const DecodeLimits& limits = {},
                                 DecodeError* error = nullptr) = delete;  // dangling result

// Verifies `payload` as the table that `type` names. An unknown type (NONE, or newer than this
// build) is refused with DecodeError::kUnknownType.
[[nodiscard]] Status VerifyPayload(wire::MessageType type, std::span<const uint8_t> payload,
                                   const DecodeLimits& limits = {}, DecodeError* error = nullptr);

// An Envelope whose payload has been verified as the table its type names.
struct VerifiedEnvelope {
  const wire::Envelope* envelope = nullptr;           // root, inside the caller's buffer
  wire::MessageType type = wire::MessageType::NONE;   // a known type
  std::array<uint8_t, kMessageIdBytes> message_id{};  // copied: an id, handy as a map key
  std::span<const uint8_t> payload;                   // verified as `type`, never empty
};

// Verifies an Envelope, requires a 16-byte message_id and a non-empty payload
// (kInvalidField), a known type (kUnknownType), and verifies the payload as that type.
// Identity checks (is `sender` the authenticated peer?) and sequence checks are the caller's.
[[nodiscard]] StatusOr<VerifiedEnvelope> DecodeEnvelope(std::span<const uint8_t> bytes,
                                                        const DecodeLimits& limits = {},
                                                        DecodeError* error = nullptr);

StatusOr<VerifiedEnvelope> DecodeEnvelope(std::vector<uint8_t>&& bytes,
                                          const DecodeLimits& limits = {},
                                          DecodeError* error = nullptr) = delete;  // dangling

// The payload of a verified envelope as the table T. Fails with InvalidArgument, without
// reading the payload, when the envelope's type is not T's: a caller's dispatch error.
template <WireMessage T>
[[nodiscard]] StatusOr<const T*> PayloadAs(const VerifiedEnvelope& envelope) {
  if (envelope.type != MessageTraits<T>::kType || envelope.payload.empty()) {
    return InvalidArgumentError("Envelope holds " + MessageTypeName(envelope.type) + ", not " +
                                std::string(MessageTraits<T>::kName));
  }
  return flatbuffers::GetRoot<T>(envelope.payload.data());
}

// An InjectionRecord with its signed body verified and located.
struct VerifiedRecord {
  const wire::InjectionRecord* record = nullptr;    // root, inside the caller's buffer
  const wire::InjectionRecordBody* body = nullptr;  // root of the nested body
  std::span<const uint8_t> signed_bytes;            // exactly the bytes the signature covers
  std::span<const uint8_t> signature;               // exactly kSignatureBytes (64) bytes
};

// Verifies an InjectionRecord and its nested body; requires a non-empty body and a 64-byte
// signature (kInvalidField). It does not check the signature: that needs the signer's public
// key, which hsm-adapter and the KMS catalog hold.
[[nodiscard]] StatusOr<VerifiedRecord> DecodeInjectionRecord(std::span<const uint8_t> bytes,
                                                             const DecodeLimits& limits = {},
                                                             DecodeError* error = nullptr);

StatusOr<VerifiedRecord> DecodeInjectionRecord(std::vector<uint8_t>&& bytes,
                                               const DecodeLimits& limits = {},
                                               DecodeError* error = nullptr) = delete;  // dangling

}  // namespace keyline::schemas

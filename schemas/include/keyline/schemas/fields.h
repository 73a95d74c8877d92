// Sizes of the fixed-length byte fields of the wire format, and safe views of verified fields.
//
// The Verifier guarantees a field is in bounds, not that it has the length the protocol needs.
// A [ubyte] field with a stated length is checked by the code that uses it, with
// CheckFixedBytes, so that it can answer with a specific error (BAD_UID, say) instead of
// refusing the whole message.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "keyline/common/status.h"

namespace keyline::schemas {

inline constexpr size_t kMessageIdBytes = 16;  // Envelope.message_id
inline constexpr size_t kEcuUidBytes = 15;     // SHE UID, 120 bits
inline constexpr size_t kM1Bytes = 16;         // SHE memory update messages
inline constexpr size_t kM2Bytes = 32;
inline constexpr size_t kM3Bytes = 16;
inline constexpr size_t kM4Bytes = 32;
inline constexpr size_t kM5Bytes = 16;
inline constexpr size_t kProofDigestBytes = 32;  // PackageSlot.proof_digest
inline constexpr size_t kCurvePublicKeyBytes = 32;  // Station.curve_public_key
inline constexpr size_t kSignatureBytes = 64;       // Ed25519, InjectionRecord.signature
inline constexpr size_t kCaChallengeBytes = 32;     // PlantCaRequest.challenge
// CertificateChallenge.challenge, CertificateIssued.confirm_challenge, EcuRequest.challenge.
inline constexpr size_t kCertificateChallengeBytes = 32;
// The longest PEM a CSR or certificate field may hold (an ECU certificate is under 1 KiB).
inline constexpr size_t kMaxPemBytes = 8192;

// The bytes of a [ubyte] field of a verified buffer; empty when the field is absent.
// The span points into the buffer and is valid as long as the buffer is.
std::span<const uint8_t> Bytes(const flatbuffers::Vector<uint8_t>* field);

// The text of a string field of a verified buffer; empty when the field is absent.
std::string_view Text(const flatbuffers::String* field);

// OK when `field` holds exactly `expected` bytes. Otherwise InvalidArgument naming `what`:
// "KeyPackageRequest.ecu_uid: expected 15 bytes, got 14" or "...: missing (expected 15 bytes)".
[[nodiscard]] Status CheckFixedBytes(const flatbuffers::Vector<uint8_t>* field, size_t expected,
                                     std::string_view what);

}  // namespace keyline::schemas

// ECDSA P-256 with SHA-256 through OpenSSL 3: what both backends need around a key whose
// private half they hold (software: the scalar in SecretBytes; PKCS#11: the token).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "keyline/common/status.h"
#include "secret_bytes.h"

namespace keyline::hsm::internal {

inline constexpr size_t kP256ScalarSize = 32;
inline constexpr size_t kP256PointSize = 65;  // uncompressed: 04 || X || Y

// Whether `scalar` (big-endian) is a P-256 private key: 1 <= d < n.
bool IsP256Scalar(std::span<const uint8_t> scalar);

// The uncompressed public point d*G of a valid scalar.
[[nodiscard]] StatusOr<std::vector<uint8_t>> P256PointOf(const SecretBytes& scalar);

// The DER SubjectPublicKeyInfo (id-ecPublicKey, prime256v1) of an uncompressed point; refuses
// a point not on the curve.
[[nodiscard]] StatusOr<std::vector<uint8_t>> P256SpkiOfPoint(std::span<const uint8_t> point);

// The uncompressed point inside a PKCS#11 CKA_EC_POINT (a DER OCTET STRING around it).
[[nodiscard]] StatusOr<std::vector<uint8_t>> P256PointOfCkaEcPoint(std::span<const uint8_t> ec_point);

// A DER ECDSA-Sig-Value over SHA-256(message). The scalar goes into an OpenSSL key for this
// call only (secure heap BIGNUM, freed with the key).
[[nodiscard]] StatusOr<std::vector<uint8_t>> P256SignSha256(const SecretBytes& scalar,
                                                            std::span<const uint8_t> point,
                                                            std::span<const uint8_t> message);

// The DER ECDSA-Sig-Value of a raw r || s (what PKCS#11 CKM_ECDSA returns).
[[nodiscard]] StatusOr<std::vector<uint8_t>> EcdsaRawToDer(std::span<const uint8_t> r_s);

}  // namespace keyline::hsm::internal

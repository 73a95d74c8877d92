// ECDSA P-256 with SHA-256 through OpenSSL 3: what both backends need around a key whose
// private half they hold (software: the scalar in SecretBytes; PKCS#11: the token).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "keyline/common/status.h"
#include "secret_bytes.h"

typedef struct evp_pkey_st EVP_PKEY;

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
// The same for a point this process computed itself (d*G of its own scalar): not checked again.
[[nodiscard]] StatusOr<std::vector<uint8_t>> P256SpkiOfOwnPoint(std::span<const uint8_t> point);

// The uncompressed point of a DER SubjectPublicKeyInfo of a P-256 key; refuses any other key,
// and a point not on the curve. Read with OpenSSL's generic DER parser: OpenSSL 3's key
// decoders cost more than the signature the key is wanted for.
[[nodiscard]] StatusOr<std::vector<uint8_t>> P256PointOfSpki(std::span<const uint8_t> spki_der);
// The same without the curve check, for a SubjectPublicKeyInfo a custody returned (its
// GetPublicKeyInfo checked the point, or computed it).
[[nodiscard]] StatusOr<std::vector<uint8_t>> P256PointOfCustodySpki(std::span<const uint8_t> spki_der);

// The public key object of a P-256 point (for verifying); refuses a point not on the curve.
using P256PublicKeyPtr = std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)>;
[[nodiscard]] StatusOr<P256PublicKeyPtr> P256PublicKey(std::span<const uint8_t> point);

// Both at once, from a DER SubjectPublicKeyInfo, checked as P256PointOfSpki does.
struct P256PublicKeyParts {
  std::vector<uint8_t> point;
  P256PublicKeyPtr key{nullptr, nullptr};
};
[[nodiscard]] StatusOr<P256PublicKeyParts> P256PublicKeyOfSpki(std::span<const uint8_t> spki_der);

// The uncompressed point inside a PKCS#11 CKA_EC_POINT (a DER OCTET STRING around it).
[[nodiscard]] StatusOr<std::vector<uint8_t>> P256PointOfCkaEcPoint(std::span<const uint8_t> ec_point);

// A P-256 private key as an OpenSSL key object, made once and used for many signatures:
// making it costs more than a signature. Sign may run on several threads at once.
class P256Signer {
 public:
  // The scalar goes into a secure-heap BIGNUM inside the key; freed with the signer.
  [[nodiscard]] static StatusOr<std::shared_ptr<const P256Signer>> Create(const SecretBytes& scalar,
                                                                          std::span<const uint8_t> point);
  ~P256Signer();
  // A DER ECDSA-Sig-Value over SHA-256(message).
  [[nodiscard]] StatusOr<std::vector<uint8_t>> Sign(std::span<const uint8_t> message) const;

 private:
  explicit P256Signer(EVP_PKEY* key) : key_(key) {}
  EVP_PKEY* key_;
};

// The DER ECDSA-Sig-Value of a raw r || s (what PKCS#11 CKM_ECDSA returns).
[[nodiscard]] StatusOr<std::vector<uint8_t>> EcdsaRawToDer(std::span<const uint8_t> r_s);

}  // namespace keyline::hsm::internal

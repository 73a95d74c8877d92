// Between Keyline's X.509 values (PEM text, DER public keys, CertificateSubject) and OpenSSL's
// objects.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/hsm/x509.h"
#include "x509/openssl_ptrs.h"

namespace keyline::hsm::internal {

[[nodiscard]] StatusOr<X509NamePtr> ToX509Name(const CertificateSubject& subject);
CertificateSubject FromX509Name(const X509_NAME* name);

// `what` names the input in errors ("issuer certificate").
[[nodiscard]] StatusOr<X509Ptr> ParseCertificatePem(std::string_view pem, std::string_view what);
[[nodiscard]] StatusOr<std::string> CertificateToPem(X509* cert);

[[nodiscard]] StatusOr<std::vector<uint8_t>> SpkiOf(EVP_PKEY* key);
// kInvalidArgument unless `key` is an EC key on P-256.
[[nodiscard]] Status CheckP256Key(EVP_PKEY* key);
// The DER SubjectPublicKeyInfo a certificate or CSR carries, as it carries it: through the ASN.1
// structure, not OpenSSL 3's key encoders (several times faster: issuing runs per ECU).
[[nodiscard]] StatusOr<std::vector<uint8_t>> SpkiOf(X509_PUBKEY* key);

// Sets `target` (a certificate's or CSR's key) to the P-256 key whose point is `point`, through
// the ASN.1 structure only: no key object is made. The caller has checked the point.
[[nodiscard]] Status SetP256PublicPoint(X509_PUBKEY* target, std::span<const uint8_t> point);
// The BIT STRING of `key`: the P-256 point of a P-256 key.
[[nodiscard]] std::vector<uint8_t> PublicPointOf(X509_PUBKEY* key);

// The text of OpenSSL's most recent error, and clears the queue: for error messages.
std::string TakeOpenSslError();

}  // namespace keyline::hsm::internal

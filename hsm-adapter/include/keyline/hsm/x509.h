// X.509 for ECU certificates: CSRs with proof of possession, a lab root, plant issuing CAs and
// ECU end-entity certificates, and chain verification.
//
// Every signature is made by a KeyCustody (SignEcdsaSha256 on a kEcdsaP256 key): an issuing
// CA's key never leaves its custody, whichever backend holds it. Certificates and CSRs cross
// this interface as PEM text; public keys as DER SubjectPublicKeyInfo.
//
//   ASSIGN_OR_RETURN(CheckedCsr csr, CheckCsr(csr_pem, challenge));
//   ASSIGN_OR_RETURN(std::string ecu_cert,
//                    IssueEndEntity(hsm, plant_ca_key, plant_ca_cert, csr.spki_der, profile));
#pragma once

#include <chrono>
#include <memory>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"

namespace keyline::hsm {

// A distinguished name, the fields Keyline uses. Empty fields are left out of the name.
struct CertificateSubject {
  std::string country;              // C, two letters. Default: empty
  std::string organization;         // O ("Example Motors"). Default: empty
  std::string organizational_unit;  // OU ("Plant P1"). Default: empty
  std::string common_name;          // CN. Default: empty
  std::string serial_number;        // serialNumber: an ECU's UID in hex. Default: empty

  friend bool operator==(const CertificateSubject&, const CertificateSubject&) = default;
};

// When a certificate is valid, both ends inclusive.
struct Validity {
  std::chrono::sys_seconds not_before;
  std::chrono::sys_seconds not_after;
};

// From now (to the second) for `days` days.
Validity ValidForDaysFromNow(int days);

// --- Certificate signing requests ---------------------------------------------------------

// A PKCS#10 CSR (PEM) for the kEcdsaP256 `key`, signed by it in `custody`. `challenge` (the
// issuer's nonce) travels as the challengePassword attribute in hex, so the signature proves
// possession of the key now, not a replay of an old request.
[[nodiscard]] StatusOr<std::string> MakeCsr(KeyCustody& custody, KeyHandle key,
                                            const CertificateSubject& subject,
                                            std::span<const uint8_t> challenge);

// What a CSR that passed CheckCsr asks for.
struct CheckedCsr {
  CertificateSubject subject;
  std::vector<uint8_t> spki_der;  // the requester's P-256 public key
  // The key itself (the SubjectPublicKeyInfo's BIT STRING: the P-256 point), as CheckCsr read
  // it: issuing from a CheckedCsr needs no key object (see EndEntityIssuer).
  std::vector<uint8_t> public_point;
};

// Checks a CSR (PEM or DER): well formed, a P-256 key, signed by that key, carrying
// `expected_challenge`. Errors: kInvalidArgument (not a CSR, not P-256), kUnauthenticated (the
// signature does not match), kPermissionDenied (challenge missing or another one).
[[nodiscard]] StatusOr<CheckedCsr> CheckCsr(std::string_view csr,
                                            std::span<const uint8_t> expected_challenge);

// --- Issuing -------------------------------------------------------------------------------

// A self-signed CA certificate for `key` (CA:TRUE, keyCertSign|cRLSign). Stands in for the
// OEM root in the lab.
[[nodiscard]] StatusOr<std::string> SelfSignCa(KeyCustody& custody, KeyHandle key,
                                               const CertificateSubject& subject,
                                               const Validity& validity);

// An intermediate CA certificate (a plant's issuing CA: CA:TRUE, pathlen:0,
// keyCertSign|cRLSign) for what `csr` asks, signed by `issuer_key`. `issuer_cert` (PEM) must
// hold the public half of `issuer_key` (kFailedPrecondition otherwise).
[[nodiscard]] StatusOr<std::string> IssueCaCertificate(KeyCustody& custody, KeyHandle issuer_key,
                                                       std::string_view issuer_cert,
                                                       const CheckedCsr& csr,
                                                       const Validity& validity);

// What an ECU certificate says besides its key.
struct EndEntityProfile {
  // serialNumber = the ECU UID in hex, CN / O as the OEM wants. Default: empty (refused: an
  // ECU certificate needs at least a serialNumber or a CN).
  CertificateSubject subject;
  // Start of validity. Default: unset, meaning now.
  std::optional<std::chrono::sys_seconds> not_before;
  // Lifetime from not_before. Default: 15 years, a car's life.
  int validity_days = 15 * 365;
  // keyUsage names (digitalSignature, keyAgreement, nonRepudiation). Default: empty, meaning
  // digitalSignature. Marked critical.
  std::vector<std::string> key_usage;
  // extendedKeyUsage names (clientAuth, serverAuth). Default: empty, meaning no extension.
  std::vector<std::string> extended_key_usage;
};

// Whether IssueEndEntity accepts these usages (kInvalidArgument naming the first it does not):
// a product definition is checked with it before any ECU needs it.
[[nodiscard]] Status CheckEndEntityUsages(std::span<const std::string> key_usage,
                                          std::span<const std::string> extended_key_usage);

// An end-entity certificate for the P-256 key `spki_der` (CA:FALSE, the profile's usages, a
// random 16-byte serial from the custody, SKI/AKI), signed by `issuer_key`.
[[nodiscard]] StatusOr<std::string> IssueEndEntity(KeyCustody& custody, KeyHandle issuer_key,
                                                   std::string_view issuer_cert,
                                                   std::span<const uint8_t> spki_der,
                                                   const EndEntityProfile& profile);

// An issuing CA ready to sign many end-entity certificates (a plant's line): its certificate
// parsed, and checked against its key in the custody, once. Issue is IssueEndEntity without
// that work each time. `custody` must outlive it. Issue may be called from one thread at a time.
class EndEntityIssuer {
 public:
  // kFailedPrecondition: `issuer_cert` does not hold the public half of `issuer_key`, or is not a CA.
  [[nodiscard]] static StatusOr<std::unique_ptr<EndEntityIssuer>> Prepare(KeyCustody& custody,
                                                                          KeyHandle issuer_key,
                                                                          std::string_view issuer_cert);
  ~EndEntityIssuer();
  // kInvalidArgument unless `spki_der` is a P-256 key.
  [[nodiscard]] StatusOr<std::string> Issue(std::span<const uint8_t> spki_der,
                                            const EndEntityProfile& profile) const;
  // For the key of a CSR that CheckCsr accepted: the same certificate without decoding the key
  // again (OpenSSL 3's key decoders and encoders cost more than the signature).
  [[nodiscard]] StatusOr<std::string> Issue(const CheckedCsr& csr, const EndEntityProfile& profile) const;

 private:
  struct Prepared;
  EndEntityIssuer(KeyCustody& custody, KeyHandle key, std::unique_ptr<Prepared> prepared);
  KeyCustody& custody_;
  KeyHandle key_;
  std::unique_ptr<Prepared> prepared_;
};

// --- Confirming an ECU certificate ------------------------------------------------------

// What an ECU signs with its certificate's key to confirm that it stored the certificate and
// holds the key: "keyline-ecu-certificate-confirmation-v1" | uid (15 bytes) | challenge (the
// PKS's 32-byte confirm challenge). The PKS checks it before INJECTED; the OEM checks it in
// the verification file.
std::vector<uint8_t> CertificateConfirmationMessage(std::span<const uint8_t> ecu_uid,
                                                    std::span<const uint8_t> challenge);

// --- Reading and verifying --------------------------------------------------------------

// The subject of a PEM certificate.
[[nodiscard]] StatusOr<CertificateSubject> SubjectOf(std::string_view cert_pem);

// The DER SubjectPublicKeyInfo of a PEM certificate.
[[nodiscard]] StatusOr<std::vector<uint8_t>> PublicKeyInfoOf(std::string_view cert_pem);

// What a certificate says about itself, for checks and status pages.
struct CertificateInfo {
  CertificateSubject subject;
  CertificateSubject issuer;
  std::string serial_hex;  // lower-case hex
  Validity validity;
  bool is_ca = false;        // basicConstraints CA:TRUE
  long path_length = -1;     // basicConstraints pathLenConstraint; -1 when absent
  bool self_signed = false;  // issuer == subject and its own key verifies its signature
  std::vector<uint8_t> spki_der;
};

// Reads a PEM certificate (kInvalidArgument if it is not one).
[[nodiscard]] StatusOr<CertificateInfo> InspectCertificate(std::string_view cert_pem);

// Verifies `leaf` up to the trusted `root` through the intermediates `chain` (all PEM) as of
// `at_time`, with OpenSSL's X509_STORE (strict X.509 checks). Errors: kInvalidArgument (not a
// certificate), kFailedPrecondition (a certificate expired or not yet valid at `at_time`),
// kUnauthenticated (no path to the root: unknown issuer, bad signature, broken constraints).
// The message names OpenSSL's reason and the certificate it failed on.
[[nodiscard]] Status VerifyChain(std::string_view leaf, std::span<const std::string> chain,
                                 std::string_view root, std::chrono::sys_seconds at_time);

}  // namespace keyline::hsm

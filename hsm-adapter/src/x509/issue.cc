// Issuing certificates: a lab root, plant issuing CAs and ECU end-entity certificates, each
// signed through the custody that holds the issuer's key (see custody_signature.h).
#include <openssl/err.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keyline/hsm/x509.h"
#include "ec/p256.h"
#include "x509/custody_signature.h"
#include "x509/x509_codec.h"

namespace keyline::hsm {
namespace {

using namespace internal;

constexpr size_t kSerialBytes = 16;

struct Extension {
  int nid;
  const char* value;  // OpenSSL's configuration syntax
};

// Subject and authority key identifiers, last: the AKI is taken from the issuer's SKI (or, for
// a self-signed certificate, from the SKI added just before it).
constexpr Extension kKeyIdentifiers[] = {
    {NID_subject_key_identifier, "hash"},
    {NID_authority_key_identifier, "keyid:always"},
};

// What one certificate says, apart from the issuer.
struct CertificateContent {
  const X509_NAME* subject;
  std::span<const uint8_t> subject_point;  // the subject's P-256 key, checked by the caller
  EVP_PKEY* self_signed_key;               // the same key as an object, for a self-signed one only
  Validity validity;
  std::vector<Extension> extensions;
};

// A random positive 16-byte serial from the custody (the token's generator for PKCS#11). The
// top bits are fixed to 01 so the DER integer is positive and always 16 bytes.
Status SetRandomSerial(KeyCustody& custody, X509* cert) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, custody.Random(kSerialBytes));
  bytes[0] = static_cast<uint8_t>((bytes[0] & 0x3f) | 0x40);
  BignumPtr serial(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  if (!serial || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr) {
    return InternalError("OpenSSL: cannot set the serial number");
  }
  return Status::Ok();
}

Status AddExtensions(X509* issuer, X509* cert, std::span<const Extension> extensions) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  for (const Extension& e : extensions) {
    X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, e.nid, e.value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
      return InternalError(std::string("OpenSSL: cannot add extension ") + OBJ_nid2sn(e.nid) + " = " +
                           e.value + ": " + TakeOpenSslError());
    }
  }
  return Status::Ok();
}

// OK when `issuer` is a CA certificate holding the public half of `issuer_key`.
Status CheckIssuer(KeyCustody& custody, KeyHandle issuer_key, X509* issuer) {
  EVP_PKEY* issuer_public = X509_get0_pubkey(issuer);
  ASSIGN_OR_RETURN(std::vector<uint8_t> custody_spki, custody.GetPublicKeyInfo(issuer_key));
  if (issuer_public == nullptr) {
    return InvalidArgumentError("issuer certificate public key cannot be read: " + TakeOpenSslError());
  }
  ASSIGN_OR_RETURN(std::vector<uint8_t> issuer_spki, SpkiOf(issuer_public));
  if (issuer_spki != custody_spki) {
    return FailedPreconditionError(
        "the issuer certificate does not hold the public half of the issuer key: another CA's "
        "certificate, or another key");
  }
  if (X509_check_ca(issuer) != 1) {
    return FailedPreconditionError("the issuer certificate is not a CA certificate");
  }
  return Status::Ok();
}

// Builds the certificate and has `issuer_key` sign it. `issuer` (checked with CheckIssuer) is
// null for a self-signed one.
StatusOr<std::string> IssueChecked(KeyCustody& custody, KeyHandle issuer_key, X509* issuer,
                                   const CertificateContent& content) {
  if (content.validity.not_after <= content.validity.not_before) {
    return InvalidArgumentError("certificate validity ends before it starts");
  }
  EVP_PKEY* issuer_public = issuer != nullptr ? X509_get0_pubkey(issuer) : content.self_signed_key;
  if (issuer_public == nullptr) return InternalError("a self-signed certificate needs its key");
  X509Ptr cert(X509_new());
  if (!cert) return InternalError("OpenSSL: X509_new failed");
  const X509_NAME* issuer_name = issuer != nullptr ? X509_get_subject_name(issuer) : content.subject;
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_subject_name(cert.get(), content.subject) != 1 ||
      X509_set_issuer_name(cert.get(), issuer_name) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(cert.get()),
                    content.validity.not_before.time_since_epoch().count()) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()),
                    content.validity.not_after.time_since_epoch().count()) == nullptr) {
    return InternalError("OpenSSL: cannot fill in a certificate: " + TakeOpenSslError());
  }
  RETURN_IF_ERROR(SetP256PublicPoint(X509_get_X509_PUBKEY(cert.get()), content.subject_point));
  RETURN_IF_ERROR(SetRandomSerial(custody, cert.get()));
  RETURN_IF_ERROR(AddExtensions(issuer != nullptr ? issuer : cert.get(), cert.get(), content.extensions));
  RETURN_IF_ERROR(AddExtensions(issuer != nullptr ? issuer : cert.get(), cert.get(), kKeyIdentifiers));
  RETURN_IF_ERROR(SignCertificateInCustody(custody, issuer_key, issuer_public, cert.get()));
  return CertificateToPem(cert.get());
}

StatusOr<std::string> Issue(KeyCustody& custody, KeyHandle issuer_key, X509* issuer,
                            const CertificateContent& content) {
  if (issuer != nullptr) RETURN_IF_ERROR(CheckIssuer(custody, issuer_key, issuer));
  return IssueChecked(custody, issuer_key, issuer, content);
}

const std::vector<Extension> kCaExtensions = {
    {NID_basic_constraints, "critical,CA:TRUE"},
    {NID_key_usage, "critical,keyCertSign,cRLSign"},
};
const std::vector<Extension> kIssuingCaExtensions = {
    {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
    {NID_key_usage, "critical,keyCertSign,cRLSign"},
};
// The usages a product may ask for, by their OpenSSL names (also the names in a product).
constexpr std::string_view kKeyUsageNames[] = {"digitalSignature", "keyAgreement", "nonRepudiation"};
constexpr std::string_view kExtendedKeyUsageNames[] = {"clientAuth", "serverAuth"};

template <size_t N>
Status CheckNames(std::span<const std::string> names, const std::string_view (&allowed)[N],
                  const char* what) {
  for (const std::string& name : names) {
    if (std::find(std::begin(allowed), std::end(allowed), name) == std::end(allowed)) {
      std::string known;
      for (std::string_view a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
      return InvalidArgumentError(std::string(what) + " \"" + name + "\" is not one of " + known);
    }
  }
  return Status::Ok();
}

std::string JoinNames(std::span<const std::string> names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ",") + name;
  return out;
}

}  // namespace

Status CheckEndEntityUsages(std::span<const std::string> key_usage,
                            std::span<const std::string> extended_key_usage) {
  RETURN_IF_ERROR(CheckNames(key_usage, kKeyUsageNames, "key usage"));
  return CheckNames(extended_key_usage, kExtendedKeyUsageNames, "extended key usage");
}

std::vector<uint8_t> CertificateConfirmationMessage(std::span<const uint8_t> ecu_uid,
                                                    std::span<const uint8_t> challenge) {
  constexpr std::string_view kDomain = "keyline-ecu-certificate-confirmation-v1";
  std::vector<uint8_t> message(kDomain.size() + ecu_uid.size() + challenge.size());
  auto out = std::copy(kDomain.begin(), kDomain.end(), message.begin());
  out = std::copy(ecu_uid.begin(), ecu_uid.end(), out);
  std::copy(challenge.begin(), challenge.end(), out);
  return message;
}

Validity ValidForDaysFromNow(int days) {
  auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  return Validity{now, now + std::chrono::days(days)};
}

StatusOr<std::string> SelfSignCa(KeyCustody& custody, KeyHandle key, const CertificateSubject& subject,
                                 const Validity& validity) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> spki, custody.GetPublicKeyInfo(key));
  ASSIGN_OR_RETURN(P256PublicKeyParts public_key, P256PublicKeyOfSpki(spki));
  ASSIGN_OR_RETURN(X509NamePtr name, ToX509Name(subject));
  return Issue(custody, key, nullptr, {name.get(), public_key.point, public_key.key.get(), validity, kCaExtensions});
}

StatusOr<std::string> IssueCaCertificate(KeyCustody& custody, KeyHandle issuer_key,
                                         std::string_view issuer_cert, const CheckedCsr& csr,
                                         const Validity& validity) {
  ASSIGN_OR_RETURN(X509Ptr issuer, ParseCertificatePem(issuer_cert, "issuer certificate"));
  // A chain through it would be refused by every verifier: say so now.
  if (X509_get_pathlen(issuer.get()) == 0) {
    return FailedPreconditionError("the issuer certificate has pathlen 0: it issues end-entity "
                                   "certificates only, not CAs");
  }
  ASSIGN_OR_RETURN(std::vector<uint8_t> point, P256PointOfSpki(csr.spki_der));
  ASSIGN_OR_RETURN(X509NamePtr name, ToX509Name(csr.subject));
  return Issue(custody, issuer_key, issuer.get(), {name.get(), point, nullptr, validity, kIssuingCaExtensions});
}

// An ECU certificate's content for `profile`, signed under a checked `issuer`, for the checked
// P-256 `point`.
static StatusOr<std::string> IssueEndEntityUnder(KeyCustody& custody, KeyHandle issuer_key, X509* issuer,
                                                 std::span<const uint8_t> point,
                                                 const EndEntityProfile& profile) {
  if (profile.subject.serial_number.empty() && profile.subject.common_name.empty()) {
    return InvalidArgumentError("an ECU certificate needs a subject serialNumber (the ECU UID) or CN");
  }
  if (profile.validity_days <= 0) {
    return InvalidArgumentError("validity_days must be positive, not " +
                                std::to_string(profile.validity_days));
  }
  Validity validity = ValidForDaysFromNow(profile.validity_days);
  if (profile.not_before) {
    validity = {*profile.not_before, *profile.not_before + std::chrono::days(profile.validity_days)};
  }
  RETURN_IF_ERROR(CheckEndEntityUsages(profile.key_usage, profile.extended_key_usage));
  // Kept alive until Issue returns: Extension holds pointers into them.
  const std::string key_usage =
      "critical," + (profile.key_usage.empty() ? std::string("digitalSignature")
                                               : JoinNames(profile.key_usage));
  const std::string extended_key_usage = JoinNames(profile.extended_key_usage);
  std::vector<Extension> extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, key_usage.c_str()},
  };
  if (!extended_key_usage.empty()) {
    extensions.push_back({NID_ext_key_usage, extended_key_usage.c_str()});
  }
  ASSIGN_OR_RETURN(X509NamePtr name, ToX509Name(profile.subject));
  return IssueChecked(custody, issuer_key, issuer, {name.get(), point, nullptr, validity, extensions});
}

StatusOr<std::string> IssueEndEntity(KeyCustody& custody, KeyHandle issuer_key,
                                     std::string_view issuer_cert, std::span<const uint8_t> spki_der,
                                     const EndEntityProfile& profile) {
  ASSIGN_OR_RETURN(std::unique_ptr<EndEntityIssuer> issuer,
                   EndEntityIssuer::Prepare(custody, issuer_key, issuer_cert));
  return issuer->Issue(spki_der, profile);
}

struct EndEntityIssuer::Prepared {
  X509Ptr certificate;
};

EndEntityIssuer::EndEntityIssuer(KeyCustody& custody, KeyHandle key, std::unique_ptr<Prepared> prepared)
    : custody_(custody), key_(key), prepared_(std::move(prepared)) {}
EndEntityIssuer::~EndEntityIssuer() = default;

StatusOr<std::unique_ptr<EndEntityIssuer>> EndEntityIssuer::Prepare(KeyCustody& custody,
                                                                     KeyHandle issuer_key,
                                                                     std::string_view issuer_cert) {
  auto prepared = std::make_unique<Prepared>();
  ASSIGN_OR_RETURN(prepared->certificate, ParseCertificatePem(issuer_cert, "issuer certificate"));
  RETURN_IF_ERROR(CheckIssuer(custody, issuer_key, prepared->certificate.get()));
  return std::unique_ptr<EndEntityIssuer>(new EndEntityIssuer(custody, issuer_key, std::move(prepared)));
}

StatusOr<std::string> EndEntityIssuer::Issue(std::span<const uint8_t> spki_der,
                                             const EndEntityProfile& profile) const {
  ASSIGN_OR_RETURN(std::vector<uint8_t> point, P256PointOfSpki(spki_der));
  return IssueEndEntityUnder(custody_, key_, prepared_->certificate.get(), point, profile);
}

StatusOr<std::string> EndEntityIssuer::Issue(const CheckedCsr& csr, const EndEntityProfile& profile) const {
  if (csr.public_point.empty()) return Issue(csr.spki_der, profile);
  return IssueEndEntityUnder(custody_, key_, prepared_->certificate.get(), csr.public_point, profile);
}

}  // namespace keyline::hsm

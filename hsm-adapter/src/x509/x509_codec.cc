#include "x509/x509_codec.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <utility>

namespace keyline::hsm::internal {
namespace {

struct NameField {
  int nid;
  std::string CertificateSubject::*field;
  const char* label;
};
// The order the fields take in a name, most general first.
constexpr NameField kNameFields[] = {
    {NID_countryName, &CertificateSubject::country, "C"},
    {NID_organizationName, &CertificateSubject::organization, "O"},
    {NID_organizationalUnitName, &CertificateSubject::organizational_unit, "OU"},
    {NID_commonName, &CertificateSubject::common_name, "CN"},
    {NID_serialNumber, &CertificateSubject::serial_number, "serialNumber"},
};

}  // namespace

std::string TakeOpenSslError() {
  unsigned long code = ERR_peek_last_error();
  std::string text = code == 0 ? "no OpenSSL error recorded" : ERR_reason_error_string(code) != nullptr
                                                                 ? ERR_reason_error_string(code)
                                                                 : "OpenSSL error " + std::to_string(code);
  ERR_clear_error();
  return text;
}

StatusOr<X509NamePtr> ToX509Name(const CertificateSubject& subject) {
  X509NamePtr name(X509_NAME_new());
  if (!name) return InternalError("OpenSSL: X509_NAME_new failed");
  for (const NameField& f : kNameFields) {
    const std::string& value = subject.*f.field;
    if (value.empty()) continue;
    // OpenSSL applies each attribute's rules (C is two letters, serialNumber printable).
    if (X509_NAME_add_entry_by_NID(name.get(), f.nid, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      return InvalidArgumentError(std::string("subject ") + f.label + " '" + value +
                                  "' is not allowed: " + TakeOpenSslError());
    }
  }
  return name;
}

CertificateSubject FromX509Name(const X509_NAME* name) {
  CertificateSubject subject;
  for (const NameField& f : kNameFields) {
    int index = X509_NAME_get_index_by_NID(name, f.nid, -1);
    if (index < 0) continue;
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
    if (len >= 0) subject.*f.field = std::string(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
  }
  return subject;
}

StatusOr<X509Ptr> ParseCertificatePem(std::string_view pem, std::string_view what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    return InvalidArgumentError(std::string(what) + " is not a PEM certificate: " + TakeOpenSslError());
  }
  return cert;
}

StatusOr<std::string> CertificateToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return InternalError("OpenSSL: cannot write a certificate as PEM: " + TakeOpenSslError());
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

Status CheckP256Key(EVP_PKEY* key) {
  char group[32] = {};
  if (key == nullptr || !EVP_PKEY_is_a(key, "EC") ||
      EVP_PKEY_get_group_name(key, group, sizeof(group), nullptr) != 1 ||
      std::string_view(group) != "prime256v1") {
    ERR_clear_error();
    return InvalidArgumentError("public key is not a P-256 key");
  }
  return Status::Ok();
}

Status SetP256PublicPoint(X509_PUBKEY* target, std::span<const uint8_t> point) {
  // X509_PUBKEY_set0_param takes the encoding over; the OIDs are OpenSSL's static objects.
  auto* bits = static_cast<unsigned char*>(OPENSSL_malloc(point.size()));
  if (bits == nullptr) return InternalError("OpenSSL: out of memory for a public key");
  std::copy(point.begin(), point.end(), bits);
  if (X509_PUBKEY_set0_param(target, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                             OBJ_nid2obj(NID_X9_62_prime256v1), bits, static_cast<int>(point.size())) != 1) {
    OPENSSL_free(bits);
    return InternalError("OpenSSL: cannot set a P-256 public key: " + TakeOpenSslError());
  }
  return Status::Ok();
}

std::vector<uint8_t> PublicPointOf(X509_PUBKEY* key) {
  const unsigned char* bits = nullptr;
  int len = 0;
  if (X509_PUBKEY_get0_param(nullptr, &bits, &len, nullptr, key) != 1 || bits == nullptr || len <= 0) return {};
  return std::vector<uint8_t>(bits, bits + len);
}

StatusOr<std::vector<uint8_t>> SpkiOf(X509_PUBKEY* key) {
  int len = i2d_X509_PUBKEY(key, nullptr);
  if (len <= 0) return InternalError("OpenSSL: cannot encode a public key: " + TakeOpenSslError());
  std::vector<uint8_t> out(static_cast<size_t>(len));
  unsigned char* p = out.data();
  i2d_X509_PUBKEY(key, &p);
  return out;
}

StatusOr<std::vector<uint8_t>> SpkiOf(EVP_PKEY* key) {
  int len = i2d_PUBKEY(key, nullptr);
  if (len <= 0) return InternalError("OpenSSL: cannot encode a public key: " + TakeOpenSslError());
  std::vector<uint8_t> out(static_cast<size_t>(len));
  unsigned char* p = out.data();
  i2d_PUBKEY(key, &p);
  return out;
}

}  // namespace keyline::hsm::internal

// PKCS#10 requests with proof of possession: the requester signs the issuer's challenge
// together with its name and key.
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <string>

#include "keyline/common/hex.h"
#include "keyline/hsm/x509.h"
#include "ec/p256.h"
#include "x509/custody_signature.h"
#include "x509/x509_codec.h"

namespace keyline::hsm {
namespace {

using namespace internal;

// challengePassword holds at most 255 characters (PKCS#9): 64 bytes in hex fit.
constexpr size_t kMaxChallenge = 64;

StatusOr<X509ReqPtr> ParseCsr(std::string_view csr) {
  X509ReqPtr req;
  if (csr.starts_with("-----BEGIN")) {
    BioPtr bio(BIO_new_mem_buf(csr.data(), static_cast<int>(csr.size())));
    if (bio) req.reset(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  } else {
    const auto* p = reinterpret_cast<const unsigned char*>(csr.data());
    req.reset(d2i_X509_REQ(nullptr, &p, static_cast<long>(csr.size())));
    if (req && p != reinterpret_cast<const unsigned char*>(csr.data() + csr.size())) req.reset();
  }
  if (!req) return InvalidArgumentError("CSR is not a PEM or DER PKCS#10 request: " + TakeOpenSslError());
  return req;
}

// The challengePassword attribute's text; kPermissionDenied when there is none.
StatusOr<std::string> ChallengeOf(const X509_REQ* req) {
  int index = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
  if (index < 0) return PermissionDeniedError("CSR carries no challenge (challengePassword)");
  X509_ATTRIBUTE* attr = X509_REQ_get_attr(req, index);
  ASN1_TYPE* value = X509_ATTRIBUTE_count(attr) == 1 ? X509_ATTRIBUTE_get0_type(attr, 0) : nullptr;
  if (value == nullptr || (value->type != V_ASN1_PRINTABLESTRING && value->type != V_ASN1_UTF8STRING &&
                           value->type != V_ASN1_IA5STRING)) {
    return PermissionDeniedError("CSR challengePassword is not a single text value");
  }
  const ASN1_STRING* text = value->value.asn1_string;
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                     static_cast<size_t>(ASN1_STRING_length(text)));
}

}  // namespace

StatusOr<std::string> MakeCsr(KeyCustody& custody, KeyHandle key, const CertificateSubject& subject,
                              std::span<const uint8_t> challenge) {
  if (challenge.empty() || challenge.size() > kMaxChallenge) {
    return InvalidArgumentError("a CSR challenge is 1.." + std::to_string(kMaxChallenge) +
                                " bytes, not " + std::to_string(challenge.size()));
  }
  ASSIGN_OR_RETURN(std::vector<uint8_t> spki, custody.GetPublicKeyInfo(key));
  ASSIGN_OR_RETURN(std::vector<uint8_t> point, P256PointOfCustodySpki(spki));
  ASSIGN_OR_RETURN(X509NamePtr name, ToX509Name(subject));
  X509ReqPtr req(X509_REQ_new());
  std::string challenge_hex = ToHex(challenge);
  if (!req) return InternalError("OpenSSL: X509_REQ_new failed");
  // The key goes in as its point (see SetP256PublicPoint).
  RETURN_IF_ERROR(SetP256PublicPoint(X509_REQ_get_X509_PUBKEY(req.get()), point));
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_subject_name(req.get(), name.get()) != 1 ||
      X509_REQ_add1_attr_by_NID(req.get(), NID_pkcs9_challengePassword, MBSTRING_ASC,
                                reinterpret_cast<const unsigned char*>(challenge_hex.data()),
                                static_cast<int>(challenge_hex.size())) != 1) {
    return InternalError("OpenSSL: cannot build a CSR: " + TakeOpenSslError());
  }
  RETURN_IF_ERROR(SignRequestInCustody(custody, key, req.get()));
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return InternalError("OpenSSL: cannot write a CSR as PEM: " + TakeOpenSslError());
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

StatusOr<CheckedCsr> CheckCsr(std::string_view csr, std::span<const uint8_t> expected_challenge) {
  ASSIGN_OR_RETURN(X509ReqPtr req, ParseCsr(csr));
  if (X509_REQ_get_version(req.get()) != X509_REQ_VERSION_1) {
    return InvalidArgumentError("CSR has version " + std::to_string(X509_REQ_get_version(req.get())) +
                                ", not 1 (0)");
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (key == nullptr) return InvalidArgumentError("CSR public key cannot be read: " + TakeOpenSslError());
  RETURN_IF_ERROR(CheckP256Key(key));
  ASSIGN_OR_RETURN(std::vector<uint8_t> spki, SpkiOf(X509_REQ_get_X509_PUBKEY(req.get())));
  if (X509_REQ_get_signature_nid(req.get()) != NID_ecdsa_with_SHA256) {
    return InvalidArgumentError("CSR is not signed with ecdsa-with-SHA256");
  }
  if (X509_REQ_verify(req.get(), key) != 1) {
    ERR_clear_error();
    return UnauthenticatedError(
        "CSR signature does not match its public key: the request was modified, or not signed "
        "by the holder of the key");
  }
  ASSIGN_OR_RETURN(std::string challenge, ChallengeOf(req.get()));
  std::string expected = ToHex(expected_challenge);
  if (challenge.size() != expected.size() ||
      CRYPTO_memcmp(challenge.data(), expected.data(), expected.size()) != 0) {
    return PermissionDeniedError("CSR answers another challenge than the one issued: a replayed "
                                 "or foreign request");
  }
  return CheckedCsr{FromX509Name(X509_REQ_get_subject_name(req.get())), std::move(spki),
                    PublicPointOf(X509_REQ_get_X509_PUBKEY(req.get()))};
}

}  // namespace keyline::hsm

#include "x509/custody_signature.h"

#include <openssl/objects.h>

#include <vector>

#include "x509/x509_codec.h"

namespace keyline::hsm::internal {
namespace {

Status SetEcdsaSha256(X509_ALGOR* alg) {
  if (X509_ALGOR_set0(alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, nullptr) != 1) {
    return InternalError("OpenSSL: cannot set the signature algorithm");
  }
  return Status::Ok();
}

// A BIT STRING holding `der` whole: "no unused bits" must be explicit, or OpenSSL counts the
// trailing zero bits of the last byte as unused (what its own signing code does too).
Status SetSignatureBits(ASN1_BIT_STRING* bits, const std::vector<uint8_t>& der) {
  if (ASN1_BIT_STRING_set(bits, const_cast<uint8_t*>(der.data()), static_cast<int>(der.size())) != 1) {
    return InternalError("OpenSSL: cannot store the signature");
  }
  bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
  bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
  return Status::Ok();
}

StatusOr<std::vector<uint8_t>> Encoded(int len, unsigned char* der) {
  if (len <= 0 || der == nullptr) {
    return InternalError("OpenSSL: cannot encode the to-be-signed part: " + TakeOpenSslError());
  }
  std::vector<uint8_t> out(der, der + len);
  OPENSSL_free(der);
  return out;
}

}  // namespace

Status SignCertificateInCustody(KeyCustody& custody, KeyHandle key, EVP_PKEY* signer_public,
                                X509* cert) {
  // OpenSSL 3.0 has setters for a CSR's signature but not for a certificate's. The getters
  // return the certificate's own members (the algorithm inside TBSCertificate, the outer one
  // and the BIT STRING); writing through them is the only way short of signing in OpenSSL.
  const ASN1_BIT_STRING* signature = nullptr;
  const X509_ALGOR* outer_alg = nullptr;
  X509_get0_signature(&signature, &outer_alg, cert);
  RETURN_IF_ERROR(SetEcdsaSha256(const_cast<X509_ALGOR*>(X509_get0_tbs_sigalg(cert))));
  RETURN_IF_ERROR(SetEcdsaSha256(const_cast<X509_ALGOR*>(outer_alg)));
  unsigned char* tbs_der = nullptr;
  int tbs_len = i2d_re_X509_tbs(cert, &tbs_der);
  ASSIGN_OR_RETURN(std::vector<uint8_t> tbs, Encoded(tbs_len, tbs_der));
  ASSIGN_OR_RETURN(std::vector<uint8_t> der_signature, custody.SignEcdsaSha256(key, tbs));
  RETURN_IF_ERROR(SetSignatureBits(const_cast<ASN1_BIT_STRING*>(signature), der_signature));
  if (X509_verify(cert, signer_public) != 1) {
    return InternalError("certificate signed by the custody does not verify under the issuer's "
                         "public key: " + TakeOpenSslError());
  }
  return Status::Ok();
}

Status SignRequestInCustody(KeyCustody& custody, KeyHandle key, X509_REQ* req) {
  X509AlgorPtr alg(X509_ALGOR_new());
  if (!alg) return InternalError("OpenSSL: X509_ALGOR_new failed");
  RETURN_IF_ERROR(SetEcdsaSha256(alg.get()));
  if (X509_REQ_set1_signature_algo(req, alg.get()) != 1) {
    return InternalError("OpenSSL: cannot set the CSR's signature algorithm");
  }
  unsigned char* tbs_der = nullptr;
  int tbs_len = i2d_re_X509_REQ_tbs(req, &tbs_der);
  ASSIGN_OR_RETURN(std::vector<uint8_t> tbs, Encoded(tbs_len, tbs_der));
  ASSIGN_OR_RETURN(std::vector<uint8_t> der_signature, custody.SignEcdsaSha256(key, tbs));
  BitStringPtr bits(ASN1_BIT_STRING_new());
  if (!bits) return InternalError("OpenSSL: ASN1_BIT_STRING_new failed");
  RETURN_IF_ERROR(SetSignatureBits(bits.get(), der_signature));
  X509_REQ_set0_signature(req, bits.release());
  return Status::Ok();
}

}  // namespace keyline::hsm::internal

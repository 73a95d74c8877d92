#include "ec/p256.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <algorithm>
#include <memory>
#include <string>

#include "keyline/hsm/key_custody.h"
#include "openssl_free.h"

namespace keyline::hsm {
namespace internal {
namespace {

using Bignum = std::unique_ptr<BIGNUM, OpenSslFree<BN_clear_free>>;
using Group = std::unique_ptr<EC_GROUP, OpenSslFree<EC_GROUP_free>>;
using Point = std::unique_ptr<EC_POINT, OpenSslFree<EC_POINT_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, OpenSslFree<EVP_PKEY_CTX_free>>;
using Pkey = std::unique_ptr<EVP_PKEY, OpenSslFree<EVP_PKEY_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, OpenSslFree<EVP_MD_CTX_free>>;
using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, OpenSslFree<OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, OpenSslFree<OSSL_PARAM_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, OpenSslFree<ECDSA_SIG_free>>;
using OctetString = std::unique_ptr<ASN1_OCTET_STRING, OpenSslFree<ASN1_OCTET_STRING_free>>;

using Algorithm = std::unique_ptr<X509_ALGOR, OpenSslFree<X509_ALGOR_free>>;
using SubjectKey = std::unique_ptr<X509_PUBKEY, OpenSslFree<X509_PUBKEY_free>>;
void FreeSequence(ASN1_SEQUENCE_ANY* sequence) { sk_ASN1_TYPE_pop_free(sequence, ASN1_TYPE_free); }
using Sequence = std::unique_ptr<ASN1_SEQUENCE_ANY, OpenSslFree<FreeSequence>>;

constexpr char kGroupName[] = "prime256v1";

// AlgorithmIdentifier { id-ecPublicKey, prime256v1 } (the OIDs are OpenSSL's static objects).
Algorithm P256Algorithm() {
  Algorithm algorithm(X509_ALGOR_new());
  if (algorithm && X509_ALGOR_set0(algorithm.get(), OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                                   OBJ_nid2obj(NID_X9_62_prime256v1)) != 1) {
    algorithm.reset();
  }
  return algorithm;
}

// Made once: building the group costs more than a scalar multiplication. OpenSSL only reads a
// group it is given as const, so threads share it.
const EC_GROUP* P256Group() {
  static const Group group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  return group.get();
}

// An EC key of `selection` (EVP_PKEY_PUBLIC_KEY or EVP_PKEY_KEYPAIR) from its parts.
StatusOr<Pkey> P256Key(const BIGNUM* scalar, std::span<const uint8_t> point) {
  ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, kGroupName, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1 ||
      (scalar != nullptr &&
       OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, scalar) != 1)) {
    return InternalError("OpenSSL: cannot build P-256 key parameters");
  }
  Params params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, scalar ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                        params.get()) != 1) {
    return InvalidArgumentError("not a valid P-256 public point");
  }
  return Pkey(raw);
}

}  // namespace

bool IsP256Scalar(std::span<const uint8_t> scalar) {
  if (scalar.size() != kP256ScalarSize) return false;
  const EC_GROUP* group = P256Group();
  Bignum d(BN_secure_new());
  if (group == nullptr || !d || BN_bin2bn(scalar.data(), static_cast<int>(scalar.size()), d.get()) == nullptr) {
    return false;
  }
  return !BN_is_zero(d.get()) && BN_cmp(d.get(), EC_GROUP_get0_order(group)) < 0;
}

StatusOr<std::vector<uint8_t>> P256PointOf(const SecretBytes& scalar) {
  if (!IsP256Scalar(scalar.span())) return InvalidArgumentError("not a valid P-256 private key");
  const EC_GROUP* group = P256Group();
  Bignum d(BN_secure_new());
  if (group == nullptr || !d || BN_bin2bn(scalar.data(), static_cast<int>(scalar.size()), d.get()) == nullptr) {
    return InternalError("OpenSSL: cannot load a P-256 scalar");
  }
  Point p(EC_POINT_new(group));
  std::vector<uint8_t> out(kP256PointSize);
  if (!p || EC_POINT_mul(group, p.get(), d.get(), nullptr, nullptr, nullptr) != 1 ||
      EC_POINT_point2oct(group, p.get(), POINT_CONVERSION_UNCOMPRESSED, out.data(),
                         out.size(), nullptr) != out.size()) {
    return InternalError("OpenSSL: cannot compute a P-256 public point");
  }
  return out;
}

StatusOr<P256PublicKeyPtr> P256PublicKey(std::span<const uint8_t> point) {
  if (point.size() != kP256PointSize || point[0] != 0x04) {
    return InvalidArgumentError("a P-256 public point is 65 bytes, uncompressed (04 || X || Y)");
  }
  ASSIGN_OR_RETURN(Pkey key, P256Key(nullptr, point));
  return P256PublicKeyPtr(key.release(), &EVP_PKEY_free);
}

StatusOr<std::vector<uint8_t>> P256SpkiOfPoint(std::span<const uint8_t> point) {
  ASSIGN_OR_RETURN(P256PublicKeyPtr checked, P256PublicKey(point));
  return P256SpkiOfOwnPoint(point);
}

StatusOr<std::vector<uint8_t>> P256SpkiOfOwnPoint(std::span<const uint8_t> point) {
  if (point.size() != kP256PointSize || point[0] != 0x04) {
    return InvalidArgumentError("a P-256 public point is 65 bytes, uncompressed (04 || X || Y)");
  }
  // Encoded through the ASN.1 structure, not OpenSSL 3's key encoders.
  Algorithm algorithm = P256Algorithm();
  SubjectKey spki(X509_PUBKEY_new());
  auto* bits = static_cast<unsigned char*>(OPENSSL_malloc(point.size()));
  if (!algorithm || !spki || bits == nullptr) {
    OPENSSL_free(bits);
    return InternalError("OpenSSL: out of memory for a SubjectPublicKeyInfo");
  }
  std::copy(point.begin(), point.end(), bits);
  if (X509_PUBKEY_set0_param(spki.get(), OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                             OBJ_nid2obj(NID_X9_62_prime256v1), bits, static_cast<int>(point.size())) != 1) {
    OPENSSL_free(bits);
    return InternalError("OpenSSL: cannot build a P-256 SubjectPublicKeyInfo");
  }
  int len = i2d_X509_PUBKEY(spki.get(), nullptr);
  if (len <= 0) return InternalError("OpenSSL: cannot encode a P-256 SubjectPublicKeyInfo");
  std::vector<uint8_t> out(static_cast<size_t>(len));
  unsigned char* p = out.data();
  if (i2d_X509_PUBKEY(spki.get(), &p) != len) return InternalError("OpenSSL: i2d_X509_PUBKEY failed");
  return out;
}

StatusOr<std::vector<uint8_t>> P256PointOfCustodySpki(std::span<const uint8_t> spki_der) {
  const auto refuse = [] {
    ERR_clear_error();
    return InvalidArgumentError("public key is not a DER SubjectPublicKeyInfo of a P-256 key");
  };
  const unsigned char* p = spki_der.data();
  Sequence parts(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, static_cast<long>(spki_der.size())));
  if (!parts || p != spki_der.data() + spki_der.size() || sk_ASN1_TYPE_num(parts.get()) != 2) return refuse();
  const ASN1_TYPE* algorithm = sk_ASN1_TYPE_value(parts.get(), 0);
  const ASN1_TYPE* key = sk_ASN1_TYPE_value(parts.get(), 1);
  if (algorithm->type != V_ASN1_SEQUENCE || key->type != V_ASN1_BIT_STRING) return refuse();
  // A constructed element keeps its whole encoding: compare it with OpenSSL's own encoding of
  // AlgorithmIdentifier { id-ecPublicKey, prime256v1 }.
  static const std::vector<uint8_t> kP256AlgorithmDer = [] {
    Algorithm expected = P256Algorithm();
    unsigned char* der = nullptr;
    int len = expected ? i2d_X509_ALGOR(expected.get(), &der) : 0;
    std::vector<uint8_t> out(der, der + std::max(len, 0));
    OPENSSL_free(der);
    return out;
  }();
  const ASN1_STRING* encoded = algorithm->value.sequence;
  const ASN1_BIT_STRING* bits = key->value.bit_string;
  if (kP256AlgorithmDer.empty() || static_cast<size_t>(ASN1_STRING_length(encoded)) != kP256AlgorithmDer.size() ||
      !std::equal(kP256AlgorithmDer.begin(), kP256AlgorithmDer.end(), ASN1_STRING_get0_data(encoded)) ||
      ((bits->flags & ASN1_STRING_FLAG_BITS_LEFT) != 0 && (bits->flags & 0x07) != 0)) {
    return refuse();
  }
  const unsigned char* data = ASN1_STRING_get0_data(bits);
  return std::vector<uint8_t>(data, data + ASN1_STRING_length(bits));
}

StatusOr<P256PublicKeyParts> P256PublicKeyOfSpki(std::span<const uint8_t> spki_der) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> point, P256PointOfCustodySpki(spki_der));
  auto key = P256PublicKey(point);
  if (!key.ok()) {
    ERR_clear_error();
    return InvalidArgumentError("public key is not a DER SubjectPublicKeyInfo of a P-256 key: " +
                                key.status().message());
  }
  return P256PublicKeyParts{std::move(point), std::move(*key)};
}

StatusOr<std::vector<uint8_t>> P256PointOfSpki(std::span<const uint8_t> spki_der) {
  ASSIGN_OR_RETURN(P256PublicKeyParts parts, P256PublicKeyOfSpki(spki_der));
  return std::move(parts.point);
}

StatusOr<std::vector<uint8_t>> P256PointOfCkaEcPoint(std::span<const uint8_t> ec_point) {
  const unsigned char* p = ec_point.data();
  OctetString octets(d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(ec_point.size())));
  if (!octets || p != ec_point.data() + ec_point.size() ||
      ASN1_STRING_length(octets.get()) != static_cast<int>(kP256PointSize)) {
    return DataLossError("CKA_EC_POINT is not a DER OCTET STRING around a 65-byte P-256 point");
  }
  const unsigned char* data = ASN1_STRING_get0_data(octets.get());
  return std::vector<uint8_t>(data, data + kP256PointSize);
}

StatusOr<std::shared_ptr<const P256Signer>> P256Signer::Create(const SecretBytes& scalar,
                                                               std::span<const uint8_t> point) {
  Bignum d(BN_secure_new());
  if (!d || BN_bin2bn(scalar.data(), static_cast<int>(scalar.size()), d.get()) == nullptr) {
    return InternalError("OpenSSL: cannot load a P-256 scalar");
  }
  ASSIGN_OR_RETURN(Pkey key, P256Key(d.get(), point));
  return std::shared_ptr<const P256Signer>(new P256Signer(key.release()));
}

P256Signer::~P256Signer() { EVP_PKEY_free(key_); }

StatusOr<std::vector<uint8_t>> P256Signer::Sign(std::span<const uint8_t> message) const {
  MdCtx md(EVP_MD_CTX_new());
  size_t len = 0;
  if (!md || EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key_, nullptr) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &len, message.data(), message.size()) != 1) {
    return InternalError("OpenSSL: cannot start an ECDSA P-256 signature");
  }
  std::vector<uint8_t> out(len);
  if (EVP_DigestSign(md.get(), out.data(), &len, message.data(), message.size()) != 1) {
    return InternalError("OpenSSL: ECDSA P-256 signing failed");
  }
  out.resize(len);
  return out;
}

StatusOr<std::vector<uint8_t>> EcdsaRawToDer(std::span<const uint8_t> r_s) {
  if (r_s.size() != 2 * kP256ScalarSize) {
    return DataLossError("a raw P-256 ECDSA signature is 64 bytes (r || s), got " +
                         std::to_string(r_s.size()));
  }
  EcdsaSig sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(r_s.data(), kP256ScalarSize, nullptr);
  BIGNUM* s = BN_bin2bn(r_s.data() + kP256ScalarSize, kP256ScalarSize, nullptr);
  if (!sig || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return InternalError("OpenSSL: cannot build an ECDSA signature");
  }
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return InternalError("OpenSSL: cannot encode an ECDSA signature");
  std::vector<uint8_t> out(static_cast<size_t>(len));
  unsigned char* p = out.data();
  if (i2d_ECDSA_SIG(sig.get(), &p) != len) return InternalError("OpenSSL: i2d_ECDSA_SIG failed");
  return out;
}

}  // namespace internal

Status VerifyEcdsaSha256(std::span<const uint8_t> spki_der, std::span<const uint8_t> message,
                         std::span<const uint8_t> signature) {
  using namespace internal;
  // The key through the generic DER parser and a key built from its point: several times
  // cheaper than OpenSSL 3's key decoders (d2i_PUBKEY), and the same checks.
  auto key = P256PublicKeyOfSpki(spki_der);
  if (!key.ok()) return key.status();
  MdCtx md(EVP_MD_CTX_new());
  if (!md || EVP_DigestVerifyInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key->key.get(),
                                     nullptr) != 1) {
    return InternalError("OpenSSL: cannot start an ECDSA P-256 verification");
  }
  // 0 is a mismatch, < 0 a signature that is not even DER: both mean "not signed by this key".
  if (EVP_DigestVerify(md.get(), signature.data(), signature.size(), message.data(),
                       message.size()) != 1) {
    ERR_clear_error();
    return UnauthenticatedError("ECDSA P-256 signature does not match the message and key");
  }
  return Status::Ok();
}

}  // namespace keyline::hsm

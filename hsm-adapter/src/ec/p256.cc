#include "ec/p256.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

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

constexpr char kGroupName[] = "prime256v1";

Group P256Group() { return Group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)); }

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
  Group group = P256Group();
  Bignum d(BN_secure_new());
  if (!group || !d || BN_bin2bn(scalar.data(), static_cast<int>(scalar.size()), d.get()) == nullptr) {
    return false;
  }
  return !BN_is_zero(d.get()) && BN_cmp(d.get(), EC_GROUP_get0_order(group.get())) < 0;
}

StatusOr<std::vector<uint8_t>> P256PointOf(const SecretBytes& scalar) {
  if (!IsP256Scalar(scalar.span())) return InvalidArgumentError("not a valid P-256 private key");
  Group group = P256Group();
  Bignum d(BN_secure_new());
  if (!group || !d || BN_bin2bn(scalar.data(), static_cast<int>(scalar.size()), d.get()) == nullptr) {
    return InternalError("OpenSSL: cannot load a P-256 scalar");
  }
  Point p(EC_POINT_new(group.get()));
  std::vector<uint8_t> out(kP256PointSize);
  if (!p || EC_POINT_mul(group.get(), p.get(), d.get(), nullptr, nullptr, nullptr) != 1 ||
      EC_POINT_point2oct(group.get(), p.get(), POINT_CONVERSION_UNCOMPRESSED, out.data(),
                         out.size(), nullptr) != out.size()) {
    return InternalError("OpenSSL: cannot compute a P-256 public point");
  }
  return out;
}

StatusOr<std::vector<uint8_t>> P256SpkiOfPoint(std::span<const uint8_t> point) {
  if (point.size() != kP256PointSize || point[0] != 0x04) {
    return InvalidArgumentError("a P-256 public point is 65 bytes, uncompressed (04 || X || Y)");
  }
  ASSIGN_OR_RETURN(Pkey key, P256Key(nullptr, point));
  int len = i2d_PUBKEY(key.get(), nullptr);
  if (len <= 0) return InternalError("OpenSSL: cannot encode a P-256 SubjectPublicKeyInfo");
  std::vector<uint8_t> out(static_cast<size_t>(len));
  unsigned char* p = out.data();
  if (i2d_PUBKEY(key.get(), &p) != len) return InternalError("OpenSSL: i2d_PUBKEY failed");
  return out;
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

StatusOr<std::vector<uint8_t>> P256SignSha256(const SecretBytes& scalar, std::span<const uint8_t> point,
                                              std::span<const uint8_t> message) {
  Bignum d(BN_secure_new());
  if (!d || BN_bin2bn(scalar.data(), static_cast<int>(scalar.size()), d.get()) == nullptr) {
    return InternalError("OpenSSL: cannot load a P-256 scalar");
  }
  ASSIGN_OR_RETURN(Pkey key, P256Key(d.get(), point));
  MdCtx md(EVP_MD_CTX_new());
  size_t len = 0;
  if (!md || EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key.get(), nullptr) != 1 ||
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
  const unsigned char* p = spki_der.data();
  Pkey key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())));
  // A refused input leaves nothing on OpenSSL's error queue for a later caller to misreport.
  if (!key || p != spki_der.data() + spki_der.size()) {
    ERR_clear_error();
    return InvalidArgumentError("public key is not a DER SubjectPublicKeyInfo");
  }
  char group[32] = {};
  if (!EVP_PKEY_is_a(key.get(), "EC") ||
      EVP_PKEY_get_group_name(key.get(), group, sizeof(group), nullptr) != 1 ||
      std::string(group) != kGroupName) {
    return InvalidArgumentError("public key is not an EC P-256 key");
  }
  MdCtx md(EVP_MD_CTX_new());
  if (!md || EVP_DigestVerifyInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key.get(),
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

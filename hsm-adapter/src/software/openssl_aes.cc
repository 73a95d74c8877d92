#include "software/openssl_aes.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdlib>
#include <string>

namespace keyline::hsm::internal {
namespace {

// Fetched once: EVP_CIPHER_fetch per call would cost more than the AES itself.
const EVP_CIPHER* Aes128Ecb() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr);
  return cipher;
}
const EVP_CIPHER* Aes128Cbc() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-128-CBC", nullptr);
  return cipher;
}
EVP_MAC* CmacAlgorithm() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "CMAC", nullptr);
  return mac;
}

}  // namespace

AesCipher::AesCipher(Mode mode, Direction direction)
    : ctx_(EVP_CIPHER_CTX_new()), mode_(mode), direction_(direction) {
  if (ctx_ == nullptr) std::abort();
}

AesCipher::~AesCipher() { EVP_CIPHER_CTX_free(ctx_); }  // frees and cleanses the key schedule

Status AesCipher::SetKey(std::span<const uint8_t, 16> key) {
  const EVP_CIPHER* cipher = mode_ == Mode::kEcb ? Aes128Ecb() : Aes128Cbc();
  if (cipher == nullptr) return InternalError("OpenSSL has no AES-128 cipher");
  static constexpr unsigned char kZeroIv[16] = {};
  int enc = direction_ == Direction::kEncrypt ? 1 : 0;
  if (EVP_CipherInit_ex(ctx_, cipher, nullptr, key.data(),
                        mode_ == Mode::kEcb ? nullptr : kZeroIv, enc) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx_, 0) != 1) {
    return InternalError("OpenSSL AES key setup failed");
  }
  keyed_ = true;
  return Status::Ok();
}

Status AesCipher::Run(std::span<const uint8_t> in, std::span<uint8_t> out) {
  if (!keyed_ || in.size() != out.size() || in.size() % 16 != 0) {
    return InternalError("AES called without a key or with a partial block");
  }
  if (mode_ == Mode::kCbcZeroIv) {
    // Restart the chain at IV 0; the key schedule stays.
    static constexpr unsigned char kZeroIv[16] = {};
    if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, kZeroIv, -1) != 1) {
      return InternalError("OpenSSL AES-CBC IV reset failed");
    }
  }
  int len = 0;
  if (EVP_CipherUpdate(ctx_, out.data(), &len, in.data(), static_cast<int>(in.size())) != 1 ||
      static_cast<size_t>(len) != in.size()) {
    return InternalError("OpenSSL AES failed");
  }
  return Status::Ok();
}

AesCmac::AesCmac() : ctx_(EVP_MAC_CTX_new(CmacAlgorithm())) {
  if (ctx_ == nullptr) std::abort();
}

AesCmac::~AesCmac() { EVP_MAC_CTX_free(ctx_); }

Status AesCmac::SetKey(std::span<const uint8_t, 16> key) {
  char cipher_name[] = "AES-128-CBC";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher_name, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx_, key.data(), key.size(), params) != 1) {
    return InternalError("OpenSSL AES-CMAC key setup failed");
  }
  keyed_ = true;
  return Status::Ok();
}

Status AesCmac::Compute(std::span<const uint8_t> message, std::span<uint8_t, 16> tag) {
  if (!keyed_) return InternalError("AES-CMAC called without a key");
  // A null key restarts the MAC with the key already set (OpenSSL 3 CMAC semantics).
  size_t out_len = 0;
  if (EVP_MAC_init(ctx_, nullptr, 0, nullptr) != 1 ||
      EVP_MAC_update(ctx_, message.data(), message.size()) != 1 ||
      EVP_MAC_final(ctx_, tag.data(), &out_len, tag.size()) != 1 || out_len != 16) {
    return InternalError("OpenSSL AES-CMAC failed");
  }
  return Status::Ok();
}

const char* OpenSslVersion() { return OpenSSL_version(OPENSSL_VERSION); }

}  // namespace keyline::hsm::internal

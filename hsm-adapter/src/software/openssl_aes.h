// AES-128 (ECB, CBC with zero IV, CMAC) through OpenSSL EVP, with the key schedule kept in a
// context so that a key used for every ECU is set up once. Not thread-safe: the owner locks.
#pragma once

#include <cstdint>
#include <span>

#include "keyline/common/status.h"

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_mac_ctx_st EVP_MAC_CTX;

namespace keyline::hsm::internal {

// AES-128-ECB or AES-128-CBC (IV 0) without padding, in one direction.
class AesCipher {
 public:
  enum class Mode { kEcb, kCbcZeroIv };
  enum class Direction { kEncrypt, kDecrypt };

  AesCipher(Mode mode, Direction direction);
  ~AesCipher();
  AesCipher(const AesCipher&) = delete;
  AesCipher& operator=(const AesCipher&) = delete;

  // Sets (or replaces) the 16-byte key.
  [[nodiscard]] Status SetKey(std::span<const uint8_t, 16> key);
  // Processes whole blocks; in.size() must equal out.size() and be a multiple of 16.
  [[nodiscard]] Status Run(std::span<const uint8_t> in, std::span<uint8_t> out);

 private:
  EVP_CIPHER_CTX* ctx_ = nullptr;
  Mode mode_;
  Direction direction_;
  bool keyed_ = false;
};

// AES-128-CMAC.
class AesCmac {
 public:
  AesCmac();
  ~AesCmac();
  AesCmac(const AesCmac&) = delete;
  AesCmac& operator=(const AesCmac&) = delete;

  [[nodiscard]] Status SetKey(std::span<const uint8_t, 16> key);
  [[nodiscard]] Status Compute(std::span<const uint8_t> message, std::span<uint8_t, 16> tag);

 private:
  EVP_MAC_CTX* ctx_ = nullptr;
  bool keyed_ = false;
};

// "OpenSSL 3.0.x ..." for CustodyInfo.
const char* OpenSslVersion();

}  // namespace keyline::hsm::internal

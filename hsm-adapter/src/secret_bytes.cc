#include "secret_bytes.h"

#include <sodium.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace keyline::hsm::internal {

SecretBytes::SecretBytes(size_t size) : size_(size) {
  if (size == 0) return;
  if (sodium_init() < 0) std::abort();
  data_ = static_cast<uint8_t*>(sodium_malloc(size));
  if (data_ == nullptr) std::abort();
  sodium_memzero(data_, size);
}

SecretBytes SecretBytes::CopyOf(std::span<const uint8_t> bytes) {
  SecretBytes out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  return out;
}

SecretBytes::~SecretBytes() {
  if (data_ != nullptr) sodium_free(data_);  // sodium_free wipes before unmapping
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) sodium_free(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

bool SecretBytes::Equals(std::span<const uint8_t> other) const {
  if (other.size() != size_) return false;
  if (size_ == 0) return true;
  return sodium_memcmp(data_, other.data(), size_) == 0;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

StatusOr<SecretBytes> ParseSecretHex(std::string_view hex, std::string_view what,
                                     size_t expected_bytes) {
  if (hex.size() != expected_bytes * 2) {
    return InvalidArgumentError(std::string(what) + ": expected " +
                                std::to_string(expected_bytes) + " bytes (" +
                                std::to_string(expected_bytes * 2) + " hex digits), got " +
                                std::to_string(hex.size()) + " hex digits");
  }
  SecretBytes out(expected_bytes);
  for (size_t i = 0; i < expected_bytes; ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      // The position only: the digits around it may be key material.
      size_t bad = hi < 0 ? 2 * i : 2 * i + 1;
      return InvalidArgumentError(std::string(what) + ": character at position " +
                                  std::to_string(bad + 1) + " is not a hex digit");
    }
    out.data()[i] = static_cast<uint8_t>((hi << 4) | lo);
  }
  return out;
}

void Wipe(std::span<uint8_t> bytes) {
  if (!bytes.empty()) sodium_memzero(bytes.data(), bytes.size());
}

Status EnsureSodium() {
  if (sodium_init() < 0) return InternalError("libsodium failed to initialise");
  return Status::Ok();
}

}  // namespace keyline::hsm::internal

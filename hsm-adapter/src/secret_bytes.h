// SecretBytes: key material in libsodium guarded memory (guard pages, mlock, no core dumps),
// wiped when freed. Move-only, never printed. Lives only inside hsm-adapter.
// Secrets up to 64 bytes share guarded slabs (see secret_bytes.cc); larger ones get their own
// sodium_malloc region.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "keyline/common/status.h"

namespace keyline::hsm::internal {

class SecretBytes {
 public:
  SecretBytes() = default;
  // Zero-filled guarded buffer of `size` bytes. Aborts only if the process is out of memory
  // (as operator new would).
  explicit SecretBytes(size_t size);
  // Copies `bytes` into guarded memory.
  static SecretBytes CopyOf(std::span<const uint8_t> bytes);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Access to the bytes is explicit so that every use is visible in review.
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  std::span<const uint8_t> span() const { return {data_, size_}; }
  std::span<uint8_t> mutable_span() { return {data_, size_}; }

  // Constant-time comparison.
  bool Equals(std::span<const uint8_t> other) const;

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Parses hex digits straight into guarded memory. Errors name `what` and never echo the digits.
[[nodiscard]] StatusOr<SecretBytes> ParseSecretHex(std::string_view hex, std::string_view what,
                                                   size_t expected_bytes);

// Wipes a stack buffer (sodium_memzero; not optimised away).
void Wipe(std::span<uint8_t> bytes);

// Initialises libsodium once; kInternal if it cannot.
[[nodiscard]] Status EnsureSodium();

}  // namespace keyline::hsm::internal

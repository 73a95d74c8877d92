#include "secret_bytes.h"

#include "keyline/common/hex.h"

#include <sodium.h>

#include <cstdlib>
#include <iterator>
#include <cstring>
#include <mutex>
#include <vector>
#include <string>
#include <utility>

namespace keyline::hsm::internal {

namespace {

// Small secrets (keys, derived keys, the opened payload of a wrapped key set: at most 1 KiB)
// come from slabs: 64 KiB regions of guarded memory (sodium_malloc: guard pages, mlock,
// excluded from core dumps), cut into slots of a power of two from 16 to 1024 bytes and wiped
// when a slot is returned. One sodium_malloc per secret would cost five system calls, four
// pages and, on munmap, a TLB shootdown on every core: on the 2-core machine that was a fifth
// of the PKS's time per ECU. Slabs are never unmapped: the process keeps its peak number of
// live secrets' worth of locked memory.
constexpr size_t kSlabChunk = 64 * 1024;
constexpr size_t kSlabClasses[] = {16, 32, 64, 128, 256, 512, 1024};
constexpr size_t kSlabClassCount = std::size(kSlabClasses);
constexpr size_t kSlabMax = kSlabClasses[kSlabClassCount - 1];

class SecretSlab {
 public:
  uint8_t* Allocate(size_t size) {
    size_t c = ClassOf(size);
    std::lock_guard lock(mu_);
    std::vector<uint8_t*>& free = free_[c];
    if (free.empty()) {
      auto* chunk = static_cast<uint8_t*>(sodium_malloc(kSlabChunk));
      if (chunk == nullptr) std::abort();
      for (size_t offset = 0; offset + kSlabClasses[c] <= kSlabChunk; offset += kSlabClasses[c]) {
        free.push_back(chunk + offset);
      }
    }
    uint8_t* slot = free.back();
    free.pop_back();
    return slot;
  }
  void Release(uint8_t* slot, size_t size) {
    size_t c = ClassOf(size);
    sodium_memzero(slot, kSlabClasses[c]);
    std::lock_guard lock(mu_);
    free_[c].push_back(slot);
  }

 private:
  static size_t ClassOf(size_t size) {
    size_t c = 0;
    while (kSlabClasses[c] < size) ++c;  // callers keep size <= kSlabMax
    return c;
  }
  std::mutex mu_;
  std::vector<uint8_t*> free_[kSlabClassCount];
};

SecretSlab& Slab() {
  static auto* slab = new SecretSlab();  // never destroyed: secrets may outlive static teardown
  return *slab;
}

uint8_t* AllocateSecret(size_t size) {
  if (sodium_init() < 0) std::abort();
  uint8_t* data = size <= kSlabMax ? Slab().Allocate(size) : static_cast<uint8_t*>(sodium_malloc(size));
  if (data == nullptr) std::abort();
  sodium_memzero(data, size);
  return data;
}

void FreeSecret(uint8_t* data, size_t size) {
  if (data == nullptr) return;
  if (size <= kSlabMax) {
    Slab().Release(data, size);
  } else {
    sodium_free(data);  // wipes before unmapping
  }
}

}  // namespace

SecretBytes::SecretBytes(size_t size) : size_(size) {
  if (size == 0) return;
  data_ = AllocateSecret(size);
}

SecretBytes SecretBytes::CopyOf(std::span<const uint8_t> bytes) {
  SecretBytes out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  return out;
}

SecretBytes::~SecretBytes() { FreeSecret(data_, size_); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    FreeSecret(data_, size_);
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
    int hi = HexDigitValue(hex[2 * i]);
    int lo = HexDigitValue(hex[2 * i + 1]);
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

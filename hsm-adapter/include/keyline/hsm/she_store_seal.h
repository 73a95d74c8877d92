// Key files and sealed images for simulated SHE key stores (the ECU simulator's state file).
//
// The ECU simulator must keep every simulated ECU's keys across restarts without writing a key
// in clear and without holding key bytes itself. It keeps two key files, each mode 0600, one
// line of hex digits:
//  - the transport key (32 hex digits): the product's factory MASTER_ECU_KEY, loaded into every
//    new simulated ECU through SheKeyStore::ProvisionKey;
//  - the state key (64 hex digits): seals each SheKeyStore with libsodium crypto_secretbox
//    (XSalsa20-Poly1305) before it is written to disk.
// A key file readable by group or others is refused. Errors name the file, never its content.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/hsm/she_key_store.h"

namespace keyline::hsm {

// Writes a new random key of `bytes` bytes as hex digits to `path` (mode 0600, created
// exclusively: an existing file is never overwritten). 16 bytes for a transport key, 32 for a
// state key.
[[nodiscard]] Status WriteRandomKeyFile(const std::filesystem::path& path, size_t bytes);

// A 16-byte SHE key from a key file, in guarded memory.
class SheTransportKey {
 public:
  static StatusOr<SheTransportKey> LoadFile(const std::filesystem::path& path);
  ~SheTransportKey();
  SheTransportKey(SheTransportKey&&) noexcept;
  SheTransportKey& operator=(SheTransportKey&&) noexcept;
  SheTransportKey(const SheTransportKey&) = delete;
  SheTransportKey& operator=(const SheTransportKey&) = delete;

 private:
  friend class SheKeyStore;
  struct Secret;
  SheTransportKey();
  std::unique_ptr<Secret> secret_;
};

// Seals and opens whole SheKeyStores under the state key.
//   sealed = "KLS1" | nonce (24) | crypto_secretbox(image of SheKeyStore)      (423 bytes)
class SheStoreSealer {
 public:
  static StatusOr<SheStoreSealer> LoadKeyFile(const std::filesystem::path& path);
  ~SheStoreSealer();
  SheStoreSealer(SheStoreSealer&&) noexcept;
  SheStoreSealer& operator=(SheStoreSealer&&) noexcept;
  SheStoreSealer(const SheStoreSealer&) = delete;
  SheStoreSealer& operator=(const SheStoreSealer&) = delete;

  // Size of every sealed store.
  static size_t SealedSize();

  [[nodiscard]] StatusOr<std::vector<uint8_t>> Seal(const SheKeyStore& store) const;
  // DataLoss when the bytes were not sealed under this key or were altered.
  [[nodiscard]] StatusOr<SheKeyStore> Open(std::span<const uint8_t> sealed) const;

 private:
  struct Secret;
  SheStoreSealer();
  std::unique_ptr<Secret> secret_;
};

}  // namespace keyline::hsm

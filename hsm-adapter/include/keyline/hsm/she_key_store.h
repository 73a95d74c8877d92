// The ECU's side of the SHE memory update protocol: a simulated SHE key store.
//
// What a real ECU's HSM does with CMD_LOAD_KEY (SHE.md): check M3 under the authorising
// slot's key, decrypt M2, refuse a write-protected slot or a counter that is not larger, store
// the key, answer M4/M5. Keyline itself never needs this (the PKS only computes M1..M3 and
// checks M4/M5); the ECU simulator and the benchmarks do. It lives here because this is the
// only module that may hold key bytes: the keys sit in guarded memory and never leave.
//
// Not thread-safe: one ECU answers one command at a time; the owner locks.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "keyline/common/status.h"
#include "keyline/hsm/she.h"

namespace keyline::hsm {

namespace internal {
class SecretBytes;
}  // namespace internal
class SheTransportKey;  // she_store_seal.h

// The SHE error codes a load can end with (ERC_* in the SHE specification).
enum class SheLoadError : uint8_t {
  kNone = 0,
  kKeyUpdateError,    // M3 does not verify: wrong authorising key, or a UID for another ECU
  kWriteProtected,    // the slot's WRITE_PROTECTION flag is set
  kCounterNotLarger,  // the counter is not above the stored one
  kKeyEmpty,          // the authorising slot holds no key
  kKeyInvalid,        // the slot cannot be loaded this way (ID or AuthID not allowed)
};
std::string_view SheLoadErrorName(SheLoadError error);

struct SheLoadOutcome {
  SheLoadError error = SheLoadError::kNone;
  SheProof proof;  // valid when error is kNone
};

// What the store says about a slot (never the key).
struct SheSlotInfo {
  bool loaded = false;
  uint32_t counter = 0;
  uint8_t flags = 0;
};

class SheKeyStore {
 public:
  explicit SheKeyStore(const SheUid& uid);
  ~SheKeyStore();
  SheKeyStore(const SheKeyStore&) = delete;
  SheKeyStore& operator=(const SheKeyStore&) = delete;
  SheKeyStore(SheKeyStore&&) noexcept;
  SheKeyStore& operator=(SheKeyStore&&) noexcept;

  const SheUid& uid() const;

  // Factory state: puts a key straight into a slot (the chip vendor's initial MASTER_ECU_KEY,
  // the transport key). `hex` is 32 hex digits, parsed into guarded memory; errors never echo it.
  [[nodiscard]] Status Provision(uint8_t slot, std::string_view hex, uint32_t counter,
                                 uint8_t flags);

  // CMD_LOAD_KEY. A refused load changes nothing. Errors (Status) are for malformed input and
  // library failures; SHE's own refusals are outcomes.
  [[nodiscard]] StatusOr<SheLoadOutcome> LoadKey(std::span<const uint8_t, 16> m1,
                                                 std::span<const uint8_t, 32> m2,
                                                 std::span<const uint8_t, 16> m3);

  // Provision from a key file loaded into guarded memory (she_store_seal.h): the key bytes
  // never pass through the caller.
  [[nodiscard]] Status ProvisionKey(uint8_t slot, const SheTransportKey& key, uint32_t counter,
                                    uint8_t flags);

  SheSlotInfo Slot(uint8_t slot) const;

 private:
  friend class SheStoreSealer;
  // The whole store as a plain image in guarded memory, for sealing only:
  //   uid (15) | 16 x (loaded 1 | counter 4, big-endian | flags 1 | key 16, zero when empty)
  internal::SecretBytes ExportImage() const;
  static StatusOr<SheKeyStore> ImportImage(std::span<const uint8_t> image);

  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace keyline::hsm

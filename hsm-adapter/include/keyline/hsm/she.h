// The SHE memory update protocol (AUTOSAR / HIS SHE, CMD_LOAD_KEY): message layouts and the
// plain values that go into them. The cryptography runs inside a KeyCustody (key_custody.h);
// this header only describes and validates the public inputs and outputs.
// Protocol and known-answer vector: docs SHE.md.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "keyline/common/status.h"
#include "keyline/hsm/key_handle.h"

namespace keyline::hsm {

// 120-bit ECU UID. All zero is the wildcard UID.
using SheUid = std::array<uint8_t, 15>;

inline constexpr uint32_t kSheMaxCounter = 0x0FFFFFFF;  // counters are 28 bits
inline constexpr uint8_t kSheMaxSlot = 0x0F;            // ID / AuthID are 4 bits
inline constexpr uint8_t kSheMaxFlags = 0x1F;           // classic SHE: 5 flag bits

// Slots of classic SHE.
inline constexpr uint8_t kSheSlotSecretKey = 0x0;
inline constexpr uint8_t kSheSlotMasterEcuKey = 0x1;
inline constexpr uint8_t kSheSlotBootMacKey = 0x2;
inline constexpr uint8_t kSheSlotBootMac = 0x3;
inline constexpr uint8_t kSheSlotKey1 = 0x4;  // KEY_1 .. KEY_10 are 0x4 .. 0xD
inline constexpr uint8_t kSheSlotRamKey = 0xE;

// Classic SHE flag bits as they sit in the 5-bit Flags field (most significant first).
// SHE+ / AUTOSAR variants add VERIFY_ONLY and shift these: the layout belongs to the product.
inline constexpr uint8_t kSheFlagWriteProtection = 0x10;
inline constexpr uint8_t kSheFlagBootProtection = 0x08;
inline constexpr uint8_t kSheFlagDebuggerProtection = 0x04;
inline constexpr uint8_t kSheFlagKeyUsage = 0x02;
inline constexpr uint8_t kSheFlagWildcard = 0x01;

// The public fields of one key load (what M1 and M4 carry, plus counter).
struct SheProofFields {
  SheUid uid{};           // the ECU's UID; all zero only with allow_wildcard_uid
  uint8_t slot = 0;       // ID: the slot being written, 0..15
  uint8_t auth_slot = 0;  // AuthID: the slot whose key authorises the write, 0..15
  uint32_t counter = 0;   // the new counter, 0..2^28-1; the ECU wants it above the stored one
  // An all-zero UID addresses every ECU whose slot has the WILDCARD flag; refused unless set.
  bool allow_wildcard_uid = false;
};

// Everything needed for M1..M3.
struct SheLoadRequest {
  KeyHandle auth_key;  // the key in auth_slot (the transport key, or the previous MASTER_ECU_KEY)
  KeyHandle new_key;   // the key to store in slot
  SheProofFields fields;
  uint8_t flags = 0;   // 5 flag bits, see kSheFlag*
};

struct SheLoadMessages {
  std::array<uint8_t, 16> m1{};
  std::array<uint8_t, 32> m2{};
  std::array<uint8_t, 16> m3{};
};

struct SheProof {
  std::array<uint8_t, 32> m4{};
  std::array<uint8_t, 16> m5{};
};

// What a checked proof says. uid/slot/auth_slot are read from M4's clear header; counter is
// decrypted with K3 and only meaningful when valid.
struct SheProofCheck {
  bool valid = false;  // M5 authenticates M4 under the new key and M4's padding is intact
  SheUid uid{};
  uint8_t slot = 0;
  uint8_t auth_slot = 0;
  uint32_t counter = 0;

  // valid, and for this ECU, slot and counter.
  bool Proves(const SheUid& expected_uid, uint8_t expected_slot, uint32_t expected_counter) const;
};

// A one-way digest of an expected proof (BLAKE2b-256 over M4 | M5, domain-separated). The PKS
// sends it with each slot's M1..M3 so that the injector can check the ECU's answer on the spot
// without learning M4/M5 in advance: a station that never loaded the key cannot make up a proof
// that matches, and the PKS still checks the proof itself.
using SheProofDigest = std::array<uint8_t, 32>;
SheProofDigest DigestSheProof(const SheProof& proof);

// Checks ranges: 4-bit slots, 28-bit counter, 5-bit flags, wildcard UID. Errors name the field.
[[nodiscard]] Status ValidateSheFields(const SheProofFields& fields);
[[nodiscard]] Status ValidateSheFlags(uint32_t flags);

bool IsWildcardUid(const SheUid& uid);

// "MASTER_ECU_KEY", "KEY_3", ... for logs and the calculator.
std::string_view SheSlotName(uint8_t slot);

}  // namespace keyline::hsm

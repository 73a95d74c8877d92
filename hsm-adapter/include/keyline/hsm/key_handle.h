// KeyHandle: how code outside hsm-adapter refers to a key it must never see.
#pragma once

#include <cstdint>
#include <string_view>

namespace keyline::hsm {

// What a key is for. The numeric values appear in wrapped blobs: never renumber.
enum class KeyKind : uint8_t {
  kAes128 = 1,   // a SHE key (MASTER_ECU_KEY, KEY_n, ...) or a transport key: 16 bytes
  kEd25519 = 2,  // a signing key pair (InjectionRecords, batches)
  kX25519 = 3,   // a key-agreement key pair: receives key sets wrapped for this peer
  kEcdsaP256 = 4,  // an ECDSA P-256 key pair: X.509 certificates and CSRs (see x509.h)
};

// "aes128" | "ed25519" | "x25519" | "ecdsa-p256".
std::string_view KeyKindName(KeyKind kind);

// A reference to a key held by one KeyCustody instance. A plain value: copying a handle does
// not copy the key. It is valid until DestroyKey() or until its custody is destroyed, and only
// with the custody that issued it (another custody refuses it with an error).
struct KeyHandle {
  uint64_t id = 0;          // 0 is never issued: a default handle is invalid
  uint32_t custody_id = 0;  // which custody instance issued it
  KeyKind kind = KeyKind::kAes128;

  bool valid() const { return id != 0; }
  friend bool operator==(const KeyHandle&, const KeyHandle&) = default;
};

}  // namespace keyline::hsm

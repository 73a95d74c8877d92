// The wire format of a WrappedKeySet, shared by both backends so that any backend opens what
// any other sealed:
//
//   "KLP1" | scheme 0x01 | recipient fingerprint (8) | crypto_box_seal(payload)
//   payload = context length (u16 BE) | context | key count (u16 BE) |
//             count x ( kind (1) | length (1) | key bytes )
//
// The sealed box (X25519 + XSalsa20-Poly1305, libsodium) authenticates the payload; the clear
// header is checked field by field, so a flipped bit anywhere is an error. A sealed box does not
// say who sealed it: the sender is authenticated by the signed message that carries the set.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"
#include "secret_bytes.h"

namespace keyline::hsm::internal {

struct ClearKey {
  KeyKind kind;
  const SecretBytes* bytes;
};

struct OpenedKey {
  KeyKind kind;
  SecretBytes bytes;
};

// The 8-byte fingerprint of a public key, as carried in the header and shown in errors.
std::array<uint8_t, 8> PeerFingerprint(const PublicKey& key);

[[nodiscard]] StatusOr<WrappedKeySet> SealKeySet(std::span<const ClearKey> keys,
                                                 const PublicKey& peer, std::string_view context);

// `own_secret` is the 32-byte X25519 secret key whose public half is `own_public`.
[[nodiscard]] StatusOr<std::vector<OpenedKey>> OpenKeySet(const SecretBytes& own_secret,
                                                          const PublicKey& own_public,
                                                          const WrappedKeySet& blob,
                                                          std::string_view context);

}  // namespace keyline::hsm::internal

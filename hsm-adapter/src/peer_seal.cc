#include "peer_seal.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "keyline/common/hex.h"

namespace keyline::hsm::internal {
namespace {

constexpr uint8_t kMagic[4] = {'K', 'L', 'P', '1'};
constexpr uint8_t kSchemeX25519SealedBox = 0x01;
constexpr size_t kHeaderSize = 4 + 1 + 8;
constexpr size_t kMaxKeys = 4096;

size_t KeySize(KeyKind kind) {
  switch (kind) {
    case KeyKind::kAes128:
      return 16;
    case KeyKind::kEd25519:
    case KeyKind::kX25519:
      return 32;
    case KeyKind::kEcdsaP256:
      return 0;  // certificate keys are never sealed for a peer
  }
  return 0;
}

}  // namespace

std::array<uint8_t, 8> PeerFingerprint(const PublicKey& key) {
  std::array<uint8_t, 8> fp{};
  static constexpr char kPersonal[] = "keyline peer fp";
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, fp.size());
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(kPersonal),
                            sizeof(kPersonal) - 1);
  crypto_generichash_update(&state, key.bytes.data(), key.bytes.size());
  crypto_generichash_final(&state, fp.data(), fp.size());
  return fp;
}

StatusOr<WrappedKeySet> SealKeySet(std::span<const ClearKey> keys, const PublicKey& peer,
                                   std::string_view context) {
  RETURN_IF_ERROR(EnsureSodium());
  if (peer.kind != KeyKind::kX25519) {
    return InvalidArgumentError("key sets are wrapped for an X25519 public key, not " +
                                std::string(KeyKindName(peer.kind)));
  }
  if (keys.empty() || keys.size() > kMaxKeys) {
    return InvalidArgumentError("a wrapped key set holds 1.." + std::to_string(kMaxKeys) +
                                " keys, not " + std::to_string(keys.size()));
  }
  if (context.size() > 0xFFFF) return InvalidArgumentError("wrap context longer than 65535 bytes");
  size_t payload_size = 2 + context.size() + 2;
  for (const ClearKey& key : keys) {
    if (key.bytes->size() != KeySize(key.kind)) {
      return InternalError("key of kind " + std::string(KeyKindName(key.kind)) +
                           " has an unexpected size");
    }
    payload_size += 2 + key.bytes->size();
  }
  SecretBytes payload(payload_size);
  uint8_t* p = payload.data();
  *p++ = static_cast<uint8_t>(context.size() >> 8);
  *p++ = static_cast<uint8_t>(context.size());
  if (!context.empty()) std::memcpy(p, context.data(), context.size());
  p += context.size();
  *p++ = static_cast<uint8_t>(keys.size() >> 8);
  *p++ = static_cast<uint8_t>(keys.size());
  for (const ClearKey& key : keys) {
    *p++ = static_cast<uint8_t>(key.kind);
    *p++ = static_cast<uint8_t>(key.bytes->size());
    std::memcpy(p, key.bytes->data(), key.bytes->size());
    p += key.bytes->size();
  }

  WrappedKeySet out;
  out.bytes.resize(kHeaderSize + crypto_box_SEALBYTES + payload_size);
  std::memcpy(out.bytes.data(), kMagic, 4);
  out.bytes[4] = kSchemeX25519SealedBox;
  auto fp = PeerFingerprint(peer);
  std::memcpy(out.bytes.data() + 5, fp.data(), fp.size());
  if (crypto_box_seal(out.bytes.data() + kHeaderSize, payload.data(), payload_size,
                      peer.bytes.data()) != 0) {
    return InvalidArgumentError("cannot seal for peer " + ToHex(fp) +
                                ": not a valid X25519 public key");
  }
  return out;
}

StatusOr<std::vector<OpenedKey>> OpenKeySet(const SecretBytes& own_secret,
                                            const PublicKey& own_public,
                                            const WrappedKeySet& blob, std::string_view context) {
  RETURN_IF_ERROR(EnsureSodium());
  const std::vector<uint8_t>& b = blob.bytes;
  if (b.size() < kHeaderSize + crypto_box_SEALBYTES + 4 || !std::equal(kMagic, kMagic + 4, b.begin())) {
    return DataLossError("wrapped key set is truncated or not a Keyline key set");
  }
  if (b[4] != kSchemeX25519SealedBox) {
    return DataLossError("wrapped key set uses unknown scheme " + std::to_string(b[4]));
  }
  auto own_fp = PeerFingerprint(own_public);
  if (!std::equal(own_fp.begin(), own_fp.end(), b.begin() + 5)) {
    return PermissionDeniedError(
        "wrapped key set is for peer " + ToHex(std::span<const uint8_t>(b.data() + 5, 8)) +
        ", not for this custody's key " + ToHex(own_fp));
  }
  size_t sealed_size = b.size() - kHeaderSize;
  SecretBytes payload(sealed_size - crypto_box_SEALBYTES);
  if (crypto_box_seal_open(payload.data(), b.data() + kHeaderSize, sealed_size,
                           own_public.bytes.data(), own_secret.data()) != 0) {
    return DataLossError("wrapped key set for peer " + ToHex(own_fp) +
                         " failed authentication: it was modified or is corrupt");
  }
  // From here on the payload is authentic; its structure is still checked defensively.
  const uint8_t* p = payload.data();
  const uint8_t* end = p + payload.size();
  auto need = [&](size_t n) { return static_cast<size_t>(end - p) >= n; };
  size_t context_size = (static_cast<size_t>(p[0]) << 8) | p[1];
  p += 2;
  if (!need(context_size + 2)) return DataLossError("wrapped key set payload is malformed");
  if (std::string_view(reinterpret_cast<const char*>(p), context_size) != context) {
    return PermissionDeniedError("wrapped key set was sealed for context '" +
                                 std::string(reinterpret_cast<const char*>(p), context_size) +
                                 "', not '" + std::string(context) + "'");
  }
  p += context_size;
  size_t count = (static_cast<size_t>(p[0]) << 8) | p[1];
  p += 2;
  std::vector<OpenedKey> keys;
  keys.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    if (!need(2)) return DataLossError("wrapped key set payload is malformed");
    auto kind = static_cast<KeyKind>(p[0]);
    size_t size = p[1];
    p += 2;
    if (KeySize(kind) == 0 || size != KeySize(kind) || !need(size)) {
      return DataLossError("wrapped key set payload is malformed");
    }
    keys.push_back({kind, SecretBytes::CopyOf({p, size})});
    p += size;
  }
  if (p != end) return DataLossError("wrapped key set payload has trailing bytes");
  return keys;
}

}  // namespace keyline::hsm::internal

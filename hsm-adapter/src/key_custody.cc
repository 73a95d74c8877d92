#include "keyline/hsm/key_custody.h"

#include <sodium.h>

#include <utility>

#include "secret_bytes.h"

namespace keyline::hsm {

std::string_view KeyKindName(KeyKind kind) {
  switch (kind) {
    case KeyKind::kAes128:
      return "aes128";
    case KeyKind::kEd25519:
      return "ed25519";
    case KeyKind::kX25519:
      return "x25519";
    case KeyKind::kEcdsaP256:
      return "ecdsa-p256";
  }
  return "unknown";
}

Status VerifySignature(const PublicKey& key, std::span<const uint8_t> message,
                       const Signature& signature) {
  RETURN_IF_ERROR(internal::EnsureSodium());
  if (key.kind != KeyKind::kEd25519) {
    return InvalidArgumentError("signatures are verified with an Ed25519 key, not " +
                                std::string(KeyKindName(key.kind)));
  }
  if (crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                  key.bytes.data()) != 0) {
    return UnauthenticatedError("Ed25519 signature does not match the message and key");
  }
  return Status::Ok();
}

ScopedKey::ScopedKey(ScopedKey&& other) noexcept
    : custody_(std::exchange(other.custody_, nullptr)), handle_(std::exchange(other.handle_, {})) {}

ScopedKey& ScopedKey::operator=(ScopedKey&& other) noexcept {
  if (this != &other) {
    Reset();
    custody_ = std::exchange(other.custody_, nullptr);
    handle_ = std::exchange(other.handle_, {});
  }
  return *this;
}

ScopedKey::~ScopedKey() { Reset(); }

KeyHandle ScopedKey::release() {
  custody_ = nullptr;
  return std::exchange(handle_, {});
}

void ScopedKey::Reset() {
  if (custody_ != nullptr && handle_.valid()) {
    // The key is gone either way; a failure here (already destroyed) has nothing to undo.
    custody_->DestroyKey(handle_).IgnoreError();
  }
  custody_ = nullptr;
  handle_ = {};
}

}  // namespace keyline::hsm

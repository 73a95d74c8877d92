// The software backend's master key file.
//
//   "KLMK" | version 1 | protection (0 = clear, 1 = Argon2id) | body | BLAKE2b-256 checksum
//   clear body:    master key (32)
//   Argon2id body: opslimit (u64 LE) | memlimit (u64 LE) | salt (16) | nonce (24) |
//                  XChaCha20-Poly1305(master key, AD = everything before the nonce) (48)
//
// The checksum tells a damaged or edited file apart from a wrong passphrase.
#pragma once

#include <filesystem>
#include <string>

#include "keyline/common/status.h"
#include "keyline/hsm/software_custody.h"
#include "secret_bytes.h"

namespace keyline::hsm::internal {

inline constexpr size_t kMasterKeySize = 32;

// Reads a passphrase from its file or environment variable into guarded memory. `what` names
// the source in errors. Exactly one source must be set.
[[nodiscard]] StatusOr<SecretBytes> ReadPassphrase(const PassphraseSource& source);

[[nodiscard]] StatusOr<SecretBytes> LoadMasterKey(const std::filesystem::path& path,
                                                  const PassphraseSource& passphrase);

}  // namespace keyline::hsm::internal

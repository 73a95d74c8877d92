// The software backend: libsodium (AEAD, sealed boxes, Ed25519, random, guarded memory) and
// OpenSSL libcrypto (AES-128-ECB/CBC, AES-CMAC). Its own secret is a 32-byte master key kept in
// a 0600 file, either in clear or sealed under a passphrase (Argon2id).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"

namespace keyline::hsm {

// Where a passphrase comes from. Never from a command-line argument (ps shows those).
struct PassphraseSource {
  // Read the passphrase from this file (trailing newline stripped). Default: unset.
  std::optional<std::filesystem::path> file;
  // Read the passphrase from this environment variable. Default: unset.
  std::optional<std::string> env_var;
};

struct SoftwareCustodyOptions {
  // The master key file (see CreateMasterKeyFile). Must be mode 0600 (or stricter).
  // Default: unset, which gives a custody without a master key: it generates, imports, computes
  // SHE messages, seals for peers and signs with generated keys, but WrapForStorage,
  // UnwrapFromStorage and GetOrCreateNamedKey fail with kFailedPrecondition. (keylinectl she.)
  std::optional<std::filesystem::path> master_key_file;
  // Needed when the master key file is passphrase-protected. Default: none.
  PassphraseSource passphrase;
};

// How CreateMasterKeyFile protects the key.
struct MasterKeyFileOptions {
  // Seal the master key under a key derived from this passphrase with Argon2id.
  // Default: unset, which stores the key in clear (protected by the file mode only).
  PassphraseSource passphrase;
  // Argon2id cost. Defaults: libsodium's "moderate" (3 passes, 256 MiB).
  uint64_t argon2_opslimit = 3;
  size_t argon2_memlimit = 256u * 1024 * 1024;
};

// Writes a new random master key to `path` with mode 0600. Refuses to overwrite a file.
[[nodiscard]] Status CreateMasterKeyFile(const std::filesystem::path& path,
                                         const MasterKeyFileOptions& options);

// Opens the software backend. A wrong passphrase, a tampered or truncated key file and a key
// file readable by others are each an error that says which.
[[nodiscard]] StatusOr<std::unique_ptr<KeyCustody>> CreateSoftwareCustody(
    const SoftwareCustodyOptions& options);

}  // namespace keyline::hsm

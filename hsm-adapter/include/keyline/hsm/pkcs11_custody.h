// The PKCS#11 backend: any module loaded by path (SoftHSMv2 in tests, a real HSM in plants).
//
// On the token, non-extractable, sensitive, found by label: the key-encryption key (AES-256,
// wrap/unwrap), the storage MAC key (HMAC-SHA256) and the Ed25519 signing keys. AES, CBC, CMAC,
// key wrapping and EdDSA run on the token. What standard PKCS#11 cannot do (the SHE
// Miyaguchi-Preneel KDF takes the key as AES *input*; X25519 where the token lacks
// CKM_EC_MONTGOMERY_KEY_PAIR_GEN) is listed in CustodyInfo::limitations and logged at start-up.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"

namespace keyline::hsm {

struct Pkcs11CustodyOptions {
  // The PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. Required.
  std::filesystem::path module_path;
  // The token's label; the slot holding it is found by label. Required unless slot_id is set.
  std::string token_label;
  // Use this slot instead of searching by label. Default: unset.
  std::optional<uint64_t> slot_id;
  // The user PIN comes from a file (first line) or an environment variable, never from a
  // command-line argument. Exactly one must be set.
  std::optional<std::filesystem::path> pin_file;
  std::optional<std::string> pin_env_var;
  // Prefix of the CKA_LABEL of every object this custody creates or looks up.
  // Default "keyline.", giving "keyline.kek", "keyline.kek-mac", "keyline.named.<name>".
  std::string label_prefix = "keyline.";
  // Create the KEK and the storage MAC key on the token when they are missing. Default true;
  // a production PKS sets false so that a wrong token is an error, not a fresh empty KEK.
  bool create_missing_kek = true;
};

// Loads the module, logs in, finds or creates the KEK, and checks the mechanisms it needs.
// A missing required mechanism is an error naming it and what needs it.
[[nodiscard]] StatusOr<std::unique_ptr<KeyCustody>> CreatePkcs11Custody(
    const Pkcs11CustodyOptions& options);

}  // namespace keyline::hsm

// kms.toml: the KMS's configuration file.
//
//   [kms]
//   data_dir = "/var/lib/keyline/kms"        # required; relative paths are from the file's dir
//   link_bind = "tcp://0.0.0.0:7100"         # plants (default shown)
//   admin_bind = "tcp://127.0.0.1:7200"      # keylinectl (default shown)
//   curve_key_file = "kms.curve"             # default <data_dir>/kms.curve, created if missing
//   admin_keys = ["<40 Z85 characters>"]     # admin Curve public keys (keyline-kms admin-key)
//   admin_key_files = ["admin.curve.pub"]    # or files of one public key each, read at start
//
//   [hsm]
//   backend = "software"                     # the software backend (libsodium + OpenSSL)
//   master_key_file = "kms-master.key"       # created (0600) on first start if missing
//
//   [log]
//   level = "info"                           # trace|debug|info|warn|error
//   file = "kms.log"                         # default: stderr only
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"
#include "keyline/kms/kms.h"

namespace keyline::kms {

struct KmsConfig {
  KmsOptions kms;
  std::string hsm_backend;                   // "software"
  std::filesystem::path master_key_file;     // software backend
  std::string log_level = "info";
  std::optional<std::filesystem::path> log_file;
};

// Reads and checks the file; errors name the file and the setting ("kms.toml: [kms] data_dir is missing").
[[nodiscard]] StatusOr<KmsConfig> LoadKmsConfig(const std::filesystem::path& path);

// Opens the custody [hsm] describes; creates the software master key file if it is missing.
[[nodiscard]] StatusOr<std::unique_ptr<hsm::KeyCustody>> OpenKmsCustody(const KmsConfig& config);

}  // namespace keyline::kms

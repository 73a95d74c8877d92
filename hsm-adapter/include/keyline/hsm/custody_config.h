// The [hsm] section of a service's TOML file, and opening the custody it describes.
//
//   [hsm]
//   backend = "software"                 # or "pkcs11"
//   master_key_file = "/var/lib/keyline/hsm-master.key"
//
//   [hsm]
//   backend = "pkcs11"
//   module = "/usr/lib/softhsm/libsofthsm2.so"
//   token_label = "pks-a"
//   pin_file = "/run/secrets/pks-a-pin"   # or pin_env = "PKS_PIN"
//
// Every service reads it the same way, so an operator learns one section.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "keyline/common/config.h"
#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"

namespace keyline::hsm {

struct CustodyConfig {
  // "software" or "pkcs11". Required.
  std::string backend;
  // software: the master key file (created with `keylinectl keys generate hsm-master`).
  std::filesystem::path master_key_file;
  // pkcs11: module path, token label, and where the PIN comes from (exactly one of the two).
  std::filesystem::path module;
  std::string token_label;
  std::optional<std::filesystem::path> pin_file;
  std::optional<std::string> pin_env;
};

// Reads `section` (the [hsm] table); problems are recorded in the reader (see ConfigReader).
// Relative paths are resolved against `base_dir` (the config file's directory).
CustodyConfig ReadCustodyConfig(const ConfigReader& section, const std::filesystem::path& base_dir);

// Opens the custody the config describes. Errors name the backend and the file or token.
[[nodiscard]] StatusOr<std::unique_ptr<KeyCustody>> OpenCustody(const CustodyConfig& config);

}  // namespace keyline::hsm

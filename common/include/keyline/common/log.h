// Process-wide logging (spdlog). Services call InitLogging once from main; libraries log
// through the default logger with spdlog::info(...) etc. Never log key material: nothing
// outside hsm-adapter has it, and hsm-adapter logs handles and fingerprints only.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "keyline/common/status.h"

namespace keyline {

struct LogOptions {
  // Logger name shown in every line, e.g. "pks-a". Default "keyline".
  std::string name = "keyline";
  // trace|debug|info|warn|error|critical|off. Default "info".
  std::string level = "info";
  // Also append to this file (its directory must exist). Default: stderr only.
  std::optional<std::filesystem::path> file;
};

// Sets the default logger. An unknown level or an unwritable file is an error naming it.
[[nodiscard]] Status InitLogging(const LogOptions& options);

}  // namespace keyline

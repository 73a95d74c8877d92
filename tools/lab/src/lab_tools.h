// The Keyline binaries keyline-lab drives (keylinectl, keyline-pks, keyline-kms,
// keyline-injector), always the ones beside keyline-lab, so a lab runs the build it came from.
// Internal to the lab module.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "keyline/common/status.h"
#include "keyline/lab/supervisor.h"

namespace keyline::lab {

// The directory keyline-lab itself was started from (/proc/self/exe).
[[nodiscard]] StatusOr<std::filesystem::path> OwnBinDir();

class LabTools {
 public:
  LabTools(std::filesystem::path bin_dir, Environment keylinectl_env)
      : bin_dir_(std::move(bin_dir)), keylinectl_env_(std::move(keylinectl_env)) {}

  std::filesystem::path Binary(const std::string& name) const { return bin_dir_ / name; }

  // Every program must be an executable file in the bin dir; the error lists the missing ones
  // and the build target that makes them.
  [[nodiscard]] Status CheckBinaries(const std::vector<std::string>& names) const;

  // Runs bin/<program> ARGS; a non-zero exit is an error quoting the command and its stderr.
  [[nodiscard]] StatusOr<std::string> Run(const std::string& program, const std::vector<std::string>& args,
                                          std::chrono::milliseconds timeout = std::chrono::seconds(120)) const;
  // The same, parsing stdout's last line as JSON (the tools' --json output).
  [[nodiscard]] StatusOr<nlohmann::json> RunJson(const std::string& program, const std::vector<std::string>& args,
                                                 std::chrono::milliseconds timeout = std::chrono::seconds(120)) const;

  // keylinectl against the lab's KMS (its endpoint, Curve key and admin key in the environment).
  [[nodiscard]] StatusOr<std::string> Keylinectl(const std::vector<std::string>& args) const {
    return Run("keylinectl", args);
  }
  [[nodiscard]] StatusOr<nlohmann::json> KeylinectlJson(std::vector<std::string> args) const {
    args.push_back("--json");
    return RunJson("keylinectl", args);
  }

  void set_keylinectl_env(Environment env) { keylinectl_env_ = std::move(env); }

 private:
  std::filesystem::path bin_dir_;
  Environment keylinectl_env_;
};

// The last non-empty line of a tool's stdout, parsed as JSON.
[[nodiscard]] StatusOr<nlohmann::json> LastJsonLine(const std::string& out, const std::string& what);

}  // namespace keyline::lab

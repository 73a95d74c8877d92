// Reading TOML configuration files with errors that name the setting.
//
//   ASSIGN_OR_RETURN(ConfigReader config, ConfigReader::Load("pks.toml"));
//   ConfigReader plant = config.Section("plant");
//   options.plant_id = plant.RequireString("id");
//   options.sync_interval_s = config.Section("sync").OptionalInt("interval_s", 60, 1, 86400);
//   RETURN_IF_ERROR(config.Finish());   // first error, or any key nobody asked for
//
// Errors read "pks.toml: [plant] id is missing" or "pks.toml: unknown setting [sync] intervall_s".
// A reader records the first error and then returns defaults, so a loader reads top to bottom
// without a check after every line; Finish() is the one place the result is known.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "keyline/common/status.h"

namespace keyline {

// A path from a config file: relative ones are relative to the file's directory `base_dir`,
// so a service reads the same files whatever directory it was started from. Empty stays empty.
std::filesystem::path ResolveConfigPath(const std::filesystem::path& base_dir,
                                        const std::string& path);

class ConfigReader {
 public:
  // Reads and parses a file; a syntax error names the file, line and column.
  static StatusOr<ConfigReader> Load(const std::filesystem::path& path);
  // Parses text; `source` names it in errors (usually the file name).
  static StatusOr<ConfigReader> Parse(std::string_view text, std::string source);

  // A nested table ("[plant]", or "[kms.link]" via Section("kms").Section("link")).
  // A missing table reads as empty: its Require* calls then report the missing keys.
  ConfigReader Section(std::string_view name) const;
  bool HasSection(std::string_view name) const;
  // An array of tables ("[[product]]"); empty when absent.
  std::vector<ConfigReader> TableArray(std::string_view name) const;

  std::string RequireString(std::string_view key) const;
  std::string OptionalString(std::string_view key, std::string fallback) const;
  int64_t RequireInt(std::string_view key, int64_t min, int64_t max) const;
  int64_t OptionalInt(std::string_view key, int64_t fallback, int64_t min, int64_t max) const;
  // A TOML float or integer within min..max.
  double OptionalDouble(std::string_view key, double fallback, double min, double max) const;
  bool OptionalBool(std::string_view key, bool fallback) const;
  std::vector<std::string> OptionalStringList(std::string_view key) const;
  // A string that must be one of `choices` ("continuous" | "interval").
  std::string RequireChoice(std::string_view key, const std::vector<std::string>& choices) const;
  // A ZeroMQ endpoint (tcp://, ipc:// or inproc://); `example` shows the expected form in the
  // error, e.g. "tcp://0.0.0.0:7200".
  std::string RequireEndpoint(std::string_view key, std::string_view example) const;
  bool Has(std::string_view key) const;

  // Records an error about `key` found by the caller's own validation ("must be 30 hex digits").
  void Fail(std::string_view key, std::string_view problem) const;

  // The first error seen, else an error naming the first key present in the file that no call
  // asked for (a typo), else OK. Call once, on the top-level reader, after reading everything.
  Status Finish() const;

  // "pks.toml".
  const std::string& source() const;

 private:
  struct Shared;
  ConfigReader(std::shared_ptr<Shared> shared, std::vector<std::string> path);
  // "[plant]" or "[product.2]" (arrays of tables are numbered from 1 for people).
  std::string Where() const;
  const void* Lookup(std::string_view key) const;  // toml::node*, kept out of this header

  std::shared_ptr<Shared> shared_;
  std::vector<std::string> path_;
};

}  // namespace keyline

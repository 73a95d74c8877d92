#include "keyline/pks/pks_config.h"

#include "keyline/common/config.h"

namespace keyline::pks {
namespace {

StatusOr<PksConfig> Read(const ConfigReader& file, const std::filesystem::path& base_dir) {
  PksConfig config;
  config.data_dir = ResolveConfigPath(base_dir, file.RequireString("data_dir"));

  ConfigReader log = file.Section("log");
  config.log_level = log.OptionalString("level", "info");
  if (log.Has("file")) config.log_file = ResolveConfigPath(base_dir, log.RequireString("file"));

  config.plant_id = file.Section("plant").RequireString("id");
  config.hsm = hsm::ReadCustodyConfig(file.Section("hsm"), base_dir);

  ConfigReader kms = file.Section("kms");
  config.kms_endpoint = kms.RequireEndpoint("connect", "tcp://kms.example:7100");
  config.kms_public_key_file = ResolveConfigPath(base_dir, kms.RequireString("curve_public_key_file"));

  ConfigReader link = file.Section("link");
  config.station_endpoint = link.RequireEndpoint("listen", "tcp://0.0.0.0:7200");
  config.curve_key_file = ResolveConfigPath(base_dir, link.RequireString("curve_key_file"));
  config.heartbeat_timeout_ms =
      static_cast<int>(link.OptionalInt("heartbeat_timeout_ms", 5000, 500, 600000));

  ConfigReader sync = file.Section("sync");
  if (sync.Has("mode")) {
    std::string mode = sync.RequireChoice("mode", {"continuous", "interval"});
    config.sync_continuous = mode == "continuous";
  }
  config.sync_interval_s = static_cast<int>(sync.OptionalInt("interval_s", 60, 1, 86400));

  ConfigReader stock = file.Section("stock");
  config.stock_request_retry_s =
      static_cast<int>(stock.OptionalInt("request_retry_s", 600, 1, 7 * 86400));
  config.short_stock_backoff_s =
      static_cast<int>(stock.OptionalInt("short_stock_backoff_s", 60, 1, 86400));
  config.deadline_sweep_ms =
      static_cast<int>(file.Section("reservations").OptionalInt("deadline_sweep_ms", 500, 10, 60000));

  RETURN_IF_ERROR(file.Finish());
  return config;
}

}  // namespace

StatusOr<PksConfig> LoadPksConfig(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(ConfigReader file, ConfigReader::Load(path));
  return Read(file, path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path());
}

StatusOr<PksConfig> ParsePksConfig(std::string_view text, std::string source,
                                   const std::filesystem::path& base_dir) {
  ASSIGN_OR_RETURN(ConfigReader file, ConfigReader::Parse(text, std::move(source)));
  return Read(file, base_dir);
}

}  // namespace keyline::pks

#include "keyline/injector/injector_config.h"

#include "keyline/common/config.h"

namespace keyline::injector {
namespace {

StatusOr<InjectorConfig> Read(const ConfigReader& file, const std::filesystem::path& base_dir) {
  InjectorConfig config;
  config.data_dir = ResolveConfigPath(base_dir, file.RequireString("data_dir"));

  ConfigReader log = file.Section("log");
  config.log_level = log.OptionalString("level", "info");
  if (log.Has("file")) config.log_file = ResolveConfigPath(base_dir, log.RequireString("file"));

  ConfigReader station = file.Section("station");
  config.station_id = station.RequireString("id");
  config.curve_key_file = ResolveConfigPath(base_dir, station.RequireString("curve_key_file"));

  ConfigReader pks = file.Section("pks");
  config.plant_id = pks.RequireString("plant");
  config.pks_endpoint = pks.RequireEndpoint("connect", "tcp://pks-a:7200");
  config.pks_public_key_file =
      ResolveConfigPath(base_dir, pks.RequireString("curve_public_key_file"));
  config.heartbeat_timeout_ms =
      static_cast<int>(pks.OptionalInt("heartbeat_timeout_ms", 5000, 500, 600000));

  ConfigReader ecu = file.Section("ecu");
  if (ecu.Has("backend")) config.ecu_backend = ecu.RequireChoice("backend", {"simulator"});
  config.ecu_endpoint = ecu.RequireEndpoint("connect", "tcp://ecu-sim-a:7300");
  config.ecu_public_key_file =
      ResolveConfigPath(base_dir, ecu.RequireString("curve_public_key_file"));
  config.load_timeout_ms = static_cast<int>(ecu.OptionalInt("load_timeout_ms", 2000, 10, 600000));
  config.load_attempts = static_cast<int>(ecu.OptionalInt("load_attempts", 3, 1, 100));

  ConfigReader eol = file.Section("eol");
  config.eol_endpoint = eol.RequireEndpoint("listen", "tcp://127.0.0.1:7400");
  config.tester_curve_key_file =
      ResolveConfigPath(base_dir, eol.RequireString("tester_curve_key_file"));

  ConfigReader provisioning = file.Section("provisioning");
  config.package_timeout_ms =
      static_cast<int>(provisioning.OptionalInt("package_timeout_ms", 10000, 100, 600000));
  config.ack_wait_ms = static_cast<int>(provisioning.OptionalInt("ack_wait_ms", 2000, 0, 600000));

  RETURN_IF_ERROR(file.Finish());
  return config;
}

}  // namespace

StatusOr<InjectorConfig> LoadInjectorConfig(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(ConfigReader file, ConfigReader::Load(path));
  return Read(file, path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path());
}

StatusOr<InjectorConfig> ParseInjectorConfig(std::string_view text, std::string source,
                                             const std::filesystem::path& base_dir) {
  ASSIGN_OR_RETURN(ConfigReader file, ConfigReader::Parse(text, std::move(source)));
  return Read(file, base_dir);
}

}  // namespace keyline::injector

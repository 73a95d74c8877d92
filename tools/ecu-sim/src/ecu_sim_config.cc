#include "keyline/common/config.h"
#include "keyline/ecu_sim/ecu_simulator.h"

namespace keyline::ecu_sim {

StatusOr<EcuSimConfig> LoadEcuSimConfig(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(ConfigReader file, ConfigReader::Load(path));
  std::filesystem::path base_dir = path.parent_path();
  EcuSimConfig config;
  config.data_dir = ResolveConfigPath(base_dir, file.RequireString("data_dir"));

  ConfigReader log = file.Section("log");
  config.log_level = log.OptionalString("level", "info");
  if (log.Has("file")) config.log_file = ResolveConfigPath(base_dir, log.RequireString("file"));

  ConfigReader ecu = file.Section("ecu");
  config.listen = ecu.RequireEndpoint("listen", "tcp://0.0.0.0:7300");
  config.curve_key_file = ResolveConfigPath(base_dir, ecu.RequireString("curve_key_file"));
  config.simulator.transport_key_file = ResolveConfigPath(base_dir, ecu.RequireString("transport_key_file"));
  config.simulator.state_key_file = ResolveConfigPath(base_dir, ecu.RequireString("state_key_file"));
  config.simulator.state_file = config.data_dir / "ecu-sim.state";

  for (const ConfigReader& client : file.TableArray("client")) {
    EcuSimClient c;
    c.id = client.RequireString("id");
    c.curve_public_key_file = ResolveConfigPath(base_dir, client.RequireString("curve_public_key_file"));
    config.clients.push_back(std::move(c));
  }

  ConfigReader faults = file.Section("faults");
  EcuFaults& f = config.simulator.faults;
  f.refuse = faults.OptionalDouble("refuse", 0, 0, 1);
  f.wrong_proof = faults.OptionalDouble("wrong_proof", 0, 0, 1);
  f.timeout = faults.OptionalDouble("timeout", 0, 0, 1);
  f.power_loss = faults.OptionalDouble("power_loss", 0, 0, 1);
  config.simulator.seed =
      static_cast<uint64_t>(faults.OptionalInt("seed", 1, 0, INT64_MAX));
  RETURN_IF_ERROR(file.Finish());
  if (config.clients.empty()) {
    return InvalidArgumentError(file.source() +
                                ": no [[client]]: at least one injector must be admitted");
  }
  if (Status s = ValidateFaults(f); !s.ok()) {
    return InvalidArgumentError(file.source() + ": [faults] " + s.message());
  }
  return config;
}

}  // namespace keyline::ecu_sim

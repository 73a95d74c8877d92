// injector.toml: everything the injector agent beside one EOL station needs before it starts.
// Read once at start-up; a missing or wrong setting is a one-line error naming it
// ("injector.toml: [station] id is missing"). docs/injector.md lists every setting.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "keyline/common/status.h"

namespace keyline::injector {

struct InjectorConfig {
  // Holds the RocksDB (DATA_DIR/db): the journal and the result outbox. Required.
  std::filesystem::path data_dir;
  std::string log_level = "info";
  std::optional<std::filesystem::path> log_file;

  // --- [station] ---
  // The station id the KMS registered (`keylinectl station add`). Required.
  std::string station_id;
  // This injector's Curve key pair, used on every link (PKS, ECU, EOL endpoint). Required.
  std::filesystem::path curve_key_file;

  // --- [pks] the plant's PKS (the injector dials it) ---
  std::string plant_id;                       // the PKS's plant id. Required.
  std::string pks_endpoint;                   // its [link] listen. Required.
  std::filesystem::path pks_public_key_file;  // its Curve public key. Required.
  int heartbeat_timeout_ms = 5000;            // dead-PKS detection. Default 5000.

  // --- [ecu] the ECU link ---
  std::string ecu_backend = "simulator";      // only the simulator so far (UDS/DoIP later)
  std::string ecu_endpoint;                   // the simulator's [ecu] listen. Required.
  std::filesystem::path ecu_public_key_file;  // the simulator's Curve public key. Required.
  int load_timeout_ms = 2000;                 // one CMD_LOAD_KEY's answer. Default 2000.
  int load_attempts = 3;                      // sends per slot while the ECU is silent. Default 3.

  // --- [eol] the local endpoint the EOL tester calls ---
  std::string eol_endpoint;                        // Required, e.g. tcp://127.0.0.1:7400.
  std::filesystem::path tester_curve_key_file;     // the tester's key pair. Required.

  // --- [provisioning] ---
  int package_timeout_ms = 10000;  // wait for the PKS's KeyPackage. Default 10000.
  int ack_wait_ms = 2000;          // wait for the PKS to record the result. Default 2000.
};

[[nodiscard]] StatusOr<InjectorConfig> LoadInjectorConfig(const std::filesystem::path& path);
[[nodiscard]] StatusOr<InjectorConfig> ParseInjectorConfig(std::string_view text, std::string source,
                                                           const std::filesystem::path& base_dir);

}  // namespace keyline::injector

// pks.toml: everything a plant's PKS needs before it starts. Read once at start-up; a missing
// or wrong setting is a one-line error naming it ("pks.toml: [plant] id is missing").
//
// What the KMS decides (products, quotas, stations, sync policy) is not here: it arrives as
// ConfigUpdate messages and is stored in the PKS's database. [sync] here is only the policy
// used until the first ConfigUpdate.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "keyline/common/status.h"
#include "keyline/hsm/custody_config.h"

namespace keyline::pks {

struct PksConfig {
  // Where the PKS keeps its RocksDB (DATA_DIR/db). Required.
  std::filesystem::path data_dir;
  // trace|debug|info|warn|error. Default "info".
  std::string log_level = "info";
  // Log file; default: stderr only.
  std::optional<std::filesystem::path> log_file;
  // This plant's id, as the KMS knows it. Required.
  std::string plant_id;
  // The plant's HSM. Required.
  hsm::CustodyConfig hsm;

  // --- the KMS link (the plant dials out) ---
  // KMS endpoint, e.g. "tcp://kms.example:7100". Required.
  std::string kms_endpoint;
  // The KMS's Curve public key file. Required.
  std::filesystem::path kms_public_key_file;
  // This PKS's Curve key pair file (used for both links). Required.
  std::filesystem::path curve_key_file;

  // --- initial sync policy (until the KMS sends one) ---
  // true: keep the KMS link up; false: contact every `sync_interval_s`. Default continuous.
  bool sync_continuous = true;
  // Seconds between contacts in interval mode. Default 60.
  int sync_interval_s = 60;

  // --- the plant LAN link (injectors dial in) ---
  // Endpoint to bind, e.g. "tcp://0.0.0.0:7200". Required.
  std::string station_endpoint;

  // --- timing ---
  // A StockRequest the KMS has not answered after this long is sent again. Default 600 s.
  int stock_request_retry_s = 600;
  // After the KMS answered a request short, wait this long before asking again. Default 60 s.
  int short_stock_backoff_s = 60;
  // How often reservations are checked against their deadline. Default 500 ms.
  int deadline_sweep_ms = 500;
  // Heartbeat time-out of both links (dead-peer detection). Default 5000 ms.
  int heartbeat_timeout_ms = 5000;
};

// Reads and checks `path`. Relative paths inside are resolved against the file's directory.
[[nodiscard]] StatusOr<PksConfig> LoadPksConfig(const std::filesystem::path& path);

// The same from text, for tests; `source` names it in errors, `base_dir` resolves paths.
[[nodiscard]] StatusOr<PksConfig> ParsePksConfig(std::string_view text, std::string source,
                                                 const std::filesystem::path& base_dir);

}  // namespace keyline::pks

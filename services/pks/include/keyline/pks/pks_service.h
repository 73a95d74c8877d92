// The plant's production key server: serves the line from local stock, online or not.
//
//   ASSIGN_OR_RETURN(PksConfig config, LoadPksConfig("pks.toml"));
//   ASSIGN_OR_RETURN(std::unique_ptr<PksService> pks, PksService::Start(config));
//   ... pks->Snapshot() ...
//   pks.reset();   // stops: links closed, everything committed is durable
//
// Threads: the message store's commit thread runs every state change (deliveries from the
// KMS and the stations, deadline burns, stock requests); the links run their own threads; a
// maintenance thread wakes every deadline_sweep_ms to submit the periodic work.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/pks/pks_config.h"

namespace keyline::pks {

struct ProductStatus {
  std::string product;
  uint64_t min_stock = 0;     // from the configuration (0 when not configured)
  uint64_t target_stock = 0;
  bool configured = false;
  uint64_t in_stock = 0;
  uint64_t reserved = 0;
  uint64_t requested = 0;
  uint64_t injected = 0;
  uint64_t burned = 0;
  uint64_t certificates_issued = 0;  // ECU certificates its issuing CA signed for this product
};

struct QueueStatus {
  std::string peer;
  std::string stream;
  uint64_t depth = 0;
  int64_t oldest_created_us = 0;  // 0 when empty or unknown
};

// What `keyline-pks status` shows.
// One issuing CA the plant's configuration lists.
struct IssuingCaStatus {
  std::string oem;
  std::string key_name;
  std::string subject;      // the certificate's CN
  int64_t not_after_us = 0;
};

// The plant's issuing budget for one OEM (docs/certificates.md).
struct CertificateBudgetStatus {
  std::string oem;
  uint64_t granted = 0;    // by the KMS, in total
  uint64_t issued = 0;     // in total
  uint64_t pending = 0;    // reservations waiting for their certificate
  uint64_t available = 0;  // granted - issued - pending: what new reservations may still use
  uint64_t requested = 0;  // asked of the KMS, not answered yet
  uint32_t budget_min = 0;     // the policy in the configuration (0 / 0: none)
  uint32_t budget_target = 0;
};

struct PksSnapshot {
  std::string plant_id;
  uint64_t config_version = 0;
  std::vector<ProductStatus> products;
  uint64_t open_reservations = 0;
  uint64_t records_written = 0;   // record_sequence: records ever written at this plant
  uint64_t records_queued = 0;    // not yet acknowledged by the KMS
  uint64_t stock_requests_open = 0;
  std::vector<QueueStatus> queues;
  std::vector<IssuingCaStatus> issuing_cas;
  std::vector<CertificateBudgetStatus> certificate_budgets;
  int64_t kms_last_contact_us = 0;  // 0: never
  std::string kms_last_error;
  bool kms_connected = false;       // live services only
  std::vector<std::string> stations_connected;  // live services only
};

class PksService {
 public:
  // Opens the HSM and the database, starts both links and the maintenance thread.
  static StatusOr<std::unique_ptr<PksService>> Start(const PksConfig& config);
  virtual ~PksService() = default;

  // The bound plant-LAN endpoint (with the real port when the config asked for port 0).
  virtual std::string station_endpoint() const = 0;
  virtual PksSnapshot Snapshot() const = 0;
};

// The status of a PKS from its data dir, whether it runs or not (a RocksDB secondary instance).
[[nodiscard]] StatusOr<PksSnapshot> ReadPksStatus(const PksConfig& config);
// The same from the data dir alone (DATA_DIR, holding db/); the plant comes from the stored
// configuration ("" before the first one).
[[nodiscard]] StatusOr<PksSnapshot> ReadPksStatus(const std::filesystem::path& data_dir);

// The public halves a KMS administrator registers for this plant (`keylinectl plant add`).
struct PlantPublicKeys {
  std::string curve_public_key_z85;  // the plant's link identity
  std::string wrap_key_hex;          // pks-transfer (X25519): StockBatch key sets are sealed to it
  std::string signing_key_hex;       // pks-signing (Ed25519): verifies the plant's records
};
// Opens the HSM (creating the named keys on first use) and the Curve key file.
[[nodiscard]] StatusOr<PlantPublicKeys> ShowPlantKeys(const PksConfig& config);

// Imports a transport key (32 hex digits in `key_file`, a 0600 file) into the plant's HSM
// under `ref`, stored wrapped in the PKS's database. The PKS must not be running (the database
// is locked). Re-importing the same ref replaces the key.
[[nodiscard]] Status ImportTransportKey(const PksConfig& config, const std::string& ref,
                                        const std::filesystem::path& key_file);

}  // namespace keyline::pks

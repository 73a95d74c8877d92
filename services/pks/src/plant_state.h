// PlantState: the PKS's stock, reservations and outstanding requests, held in memory and
// mirrored into RocksDB.
//
// Only the message store's commit thread changes it, inside a Work function: every Put* call
// writes the change into the group's WriteBatch and applies it in memory, so that later items
// of the same group see it. Put* calls come last in a Work, after everything that can fail,
// because a failed item's batch entries are rolled back but memory is not. If a whole group
// write fails (disk full), the owner reloads the state from the database (see Load).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/hsm/she.h"
#include "plant_config.h"

namespace rocksdb {
class WriteBatch;
}  // namespace rocksdb

namespace keyline::broker {
class Database;
}  // namespace keyline::broker

namespace keyline::pks {

// Column families of a PKS database besides the broker's.
inline constexpr char kKeySetsFamily[] = "keysets";
inline constexpr char kMetaFamily[] = "meta";
std::vector<std::string> PksColumnFamilies();

enum class KeySetState : uint8_t { kInStock = 1, kReserved = 2, kInjected = 3, kBurned = 4 };
const char* KeySetStateName(KeySetState state);

// A reservation's certificate slot (docs/certificates.md): the challenge its CSR must carry,
// and once issued, the certificate, so that asking again returns the same one.
struct ReservedCertificate {
  schemas::CertificateSlotSpec slot;  // as the product said at reservation
  std::vector<uint8_t> challenge;     // 32 bytes, in the KeyPackage
  std::string certificate;            // PEM; empty until issued
  std::string chain;                  // the issuing CA's PEM
  std::vector<uint8_t> confirm_challenge;  // 32 bytes, in the CertificateIssued
  int64_t issued_at_us = 0;
  std::string issuing_ca;             // key name of the CA that signed it
  bool issued() const { return !certificate.empty(); }
};

struct Reservation {
  std::string package_id;
  std::string request_id;
  std::string station;
  hsm::SheUid ecu_uid{};
  int64_t reserved_at_us = 0;
  int64_t deadline_us = 0;
  std::vector<SlotConfig> layout;  // as used for the package (see pks_store.fbs)
  // The M4/M5 each layout slot's load must bring back, in layout order; empty in a
  // reservation stored by an older release (the proof is then checked with the keys).
  std::vector<hsm::SheProof> expected_proofs;
  std::optional<ReservedCertificate> certificate;  // set when the product has a certificate slot
};

struct KeySet {
  std::string id;
  std::string product;
  std::string batch_id;
  std::vector<uint8_t> wrapped;  // sealed for this plant's pks-transfer key (docs/key-flow.md)
  std::vector<uint8_t> slots;
  KeySetState state = KeySetState::kInStock;
  uint64_t stock_order = 0;
  int64_t received_at_us = 0;
  std::optional<Reservation> reservation;
  int64_t decided_at_us = 0;
  std::string burn_reason;
  uint64_t record_sequence = 0;
};

struct StockRequestEntry {
  std::string request_id;
  std::string product;
  uint32_t count = 0;
  int64_t sent_at_us = 0;
};

// The plant's issuing budget for one OEM (docs/certificates.md): it may issue at most
// `granted` certificates in all. Stored, and changed in the same write as what changes it.
struct CertificateBudget {
  std::string oem;
  uint64_t granted = 0;  // by the KMS, in total
  uint64_t issued = 0;   // in total
  // The CertificateBudgetRequest outstanding; empty request_id: none.
  std::string request_id;
  uint32_t requested = 0;
  int64_t request_sent_at_us = 0;
};

// Where the plant stands with one OEM's certificates. Each reservation whose certificate is not
// issued yet holds one unit, so a reservation is only made when its certificate can be issued.
struct BudgetLevel {
  uint64_t granted = 0;
  uint64_t issued = 0;
  uint64_t pending = 0;    // reservations waiting for their certificate
  uint64_t requested = 0;  // asked of the KMS, not answered yet
  uint64_t available() const {
    return granted > issued + pending ? granted - issued - pending : 0;
  }
  std::string Describe() const;  // "N granted, N issued, N held by reservations"
};

struct ProductCounts {
  uint64_t in_stock = 0;
  uint64_t reserved = 0;
  uint64_t injected = 0;
  uint64_t burned = 0;
  uint64_t requested = 0;  // key sets asked for in requests not yet answered
  uint64_t certificates = 0;  // ECU certificates issued (whatever became of the key set)
  uint64_t certificates_pending = 0;  // RESERVED with a certificate slot not issued yet
};

class PlantState {
 public:
  // Reads the whole state of `database` (which must stay open while this object is used).
  // An empty `plant_id` takes the plant of the stored configuration (status from a data dir).
  // A stored record that fails verification is an error naming its key: the PKS does not
  // start on a database it cannot read completely.
  static StatusOr<std::unique_ptr<PlantState>> Load(broker::Database* database,
                                                    const std::string& plant_id);

  const std::string& plant_id() const { return plant_id_; }
  const PlantConfig& config() const { return config_; }
  const KeySet* Find(const std::string& key_set_id) const;
  // The key set reserved (at any time, whatever became of it) for this ECU and product.
  const KeySet* FindByEcu(const std::string& product, const hsm::SheUid& uid) const;
  // The oldest key set of `product` in stock, or null.
  const KeySet* OldestInStock(const std::string& product) const;
  // Reservations whose deadline is at or before `now_us`, earliest first, at most `max`.
  std::vector<const KeySet*> ExpiredReservations(int64_t now_us, size_t max) const;
  // Products configured or holding key sets, sorted.
  std::vector<std::string> ProductNames() const;
  ProductCounts Counts(const std::string& product) const;
  uint64_t open_reservations() const { return deadlines_.size(); }
  uint64_t record_sequence() const { return record_sequence_; }
  uint64_t next_stock_order() const { return last_stock_order_ + 1; }
  const std::map<std::string, StockRequestEntry>& stock_requests() const { return requests_; }
  bool BatchApplied(const std::string& batch_id) const { return batches_.count(batch_id) != 0; }
  // The issuing budget of `oem` (all zero if the KMS never granted one).
  CertificateBudget Budget(const std::string& oem) const;
  const std::map<std::string, CertificateBudget>& budgets() const { return budgets_; }
  // The budget of `oem` with the reservations of its products that wait for a certificate.
  BudgetLevel BudgetLevelOf(const std::string& oem) const;
  bool GrantApplied(const std::string& grant_id) const { return grants_.count(grant_id) != 0; }
  // The stored (HSM-wrapped) transport key named `ref`, if imported.
  const std::vector<uint8_t>* TransportKey(const std::string& ref) const;

  // --- changes: into `batch` and into memory at once (see the class comment) ---
  void PutKeySet(rocksdb::WriteBatch& batch, KeySet key_set);
  void PutConfig(rocksdb::WriteBatch& batch, std::span<const uint8_t> update_bytes,
                 PlantConfig config);
  void PutStockRequest(rocksdb::WriteBatch& batch, StockRequestEntry request);
  void EraseStockRequest(rocksdb::WriteBatch& batch, const std::string& request_id);
  void PutBatchApplied(rocksdb::WriteBatch& batch, const std::string& batch_id);
  void PutRecordSequence(rocksdb::WriteBatch& batch, uint64_t sequence);
  void PutBudget(rocksdb::WriteBatch& batch, CertificateBudget budget);
  void PutGrantApplied(rocksdb::WriteBatch& batch, const std::string& grant_id);
  void PutTransportKey(rocksdb::WriteBatch& batch, const std::string& ref,
                       std::vector<uint8_t> wrapped);

 private:
  PlantState(broker::Database* database, std::string plant_id)
      : database_(database), plant_id_(std::move(plant_id)) {}
  // Memory only: indexes and counts for one key set entering / leaving the map.
  void Index(const KeySet& key_set);
  void Unindex(const KeySet& key_set);
  static std::string EcuKey(const std::string& product, const hsm::SheUid& uid);

  broker::Database* database_;
  std::string plant_id_;
  PlantConfig config_;
  std::unordered_map<std::string, KeySet> key_sets_;
  std::map<std::string, std::map<uint64_t, std::string>> in_stock_;  // product -> order -> id
  std::unordered_map<std::string, std::string> by_ecu_;              // product|uid -> id
  std::set<std::pair<int64_t, std::string>> deadlines_;               // RESERVED only
  std::map<std::string, ProductCounts> counts_;
  std::map<std::string, StockRequestEntry> requests_;
  std::set<std::string> batches_;
  std::map<std::string, CertificateBudget> budgets_;  // by OEM
  std::set<std::string> grants_;                      // CertificateBudgetGrant ids applied
  std::map<std::string, std::vector<uint8_t>> transport_keys_;
  uint64_t record_sequence_ = 0;
  uint64_t last_stock_order_ = 0;
};

}  // namespace keyline::pks

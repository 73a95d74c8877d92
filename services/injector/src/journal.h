// The injector's journal: one entry per (product, ECU) in its own column family, so that a
// provisioning asked for again, or resumed after a crash, never fetches, loads or reports twice.
//
//   PACKAGE   the KeyPackage has come (written by the link handler, in the delivery's write)
//   REPORTED  the InjectionResult is in the outbox, written in the same batch; final
//
// Entries hold M1..M3 and M4/M5 only (never a key in clear): StoredProvisioning in
// schemas/injector_store.fbs.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/injector/ecu_link.h"

namespace rocksdb {
class WriteBatch;
}  // namespace rocksdb

namespace keyline::broker {
class Database;
}  // namespace keyline::broker

namespace keyline::injector {

inline constexpr char kJournalFamily[] = "journal";

struct JournalEntry {
  bool reported = false;          // REPORTED (else PACKAGE)
  std::vector<uint8_t> package;   // the KeyPackage bytes
  uint16_t attempts = 0;          // runs of the package against the ECU started
  std::vector<uint8_t> reply;     // REPORTED: the EolReply bytes
  uint64_t result_sequence = 0;   // REPORTED: outbox sequence of the InjectionResult
};

struct JournalCounts {
  uint64_t provisioned = 0;  // REPORTED and PROVISIONED
  uint64_t failed = 0;       // REPORTED otherwise
  uint64_t pending = 0;      // PACKAGE: fetched, not (yet) reported
};

class Journal {
 public:
  // `database` (opened with kJournalFamily) must outlive the journal.
  explicit Journal(broker::Database* database) : database_(database) {}

  [[nodiscard]] StatusOr<std::optional<JournalEntry>> Get(const std::string& product,
                                                          const EcuUid& uid) const;
  void Put(rocksdb::WriteBatch& batch, const std::string& product, const EcuUid& uid,
           const JournalEntry& entry) const;
  [[nodiscard]] StatusOr<JournalCounts> Count() const;

 private:
  broker::Database* database_;
};

}  // namespace keyline::injector

// RecordIngest: applies a plant's InjectionRecords once. A record is taken only if the plant's
// registered `pks-signing` key signed it, it names the sending plant, and its key set was
// shipped to that plant and is still SHIPPED; it then moves the key set to INJECTED or BURNED.
// A record sequence seen before is a duplicate: skipped, counted, not an error.
//
// Runs inside the link's group write on the store's commit thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "audit_log.h"
#include "catalog.h"
#include "certificate_budgets.h"
#include "kms_context.h"

namespace keyline::kms {

struct RecordCounters {
  uint64_t applied = 0;
  uint64_t duplicates = 0;
  uint64_t refused = 0;
};

class RecordIngest {
 public:
  RecordIngest(KmsContext* context, Catalog* catalog, AuditLog* audit, CertificateBudgets* budgets)
      : context_(context), catalog_(catalog), audit_(audit), budgets_(budgets) {}

  [[nodiscard]] Status Load();

  // An error refuses the record for good (the link keeps it as a dead letter).
  [[nodiscard]] Status Apply(const std::string& plant, std::span<const uint8_t> payload,
                             broker::WriteContext& write);

  // Highest record sequence applied from `plant` (counting writes not yet committed).
  uint64_t AppliedThrough(const std::string& plant) const;
  std::map<std::string, RecordCounters> Counters() const;

 private:
  Status Refuse(const std::string& plant, Status why);

  KmsContext* context_;
  Catalog* catalog_;
  AuditLog* audit_;
  CertificateBudgets* budgets_;  // counts the certificates records report
  mutable std::mutex mu_;
  std::map<std::string, RecordCounters> counters_;
  std::map<std::string, uint64_t> through_;  // per plant, persisted as meta "records_through/<plant>"
  // Record keys and key sets changed by writes not yet seen committed (commit thread only).
  std::set<std::string> pending_records_;
  std::set<std::string> pending_key_sets_;
  uint64_t writes_seen_ = 0;
};

}  // namespace keyline::kms

// The plants' issuing budgets (docs/certificates.md): how many ECU certificates each plant may
// issue per OEM. A plant asks (CertificateBudgetRequest) when it runs low; the KMS grants at
// most what keeps the plant's certificates not yet seen in an injection record within the
// policy's target. So a plant box taken off the network can mint at most `target` certificates
// beyond what the OEM has already been told of.
//
// Threads: requests and record counts run on the message store's commit thread inside a link
// delivery; SetPolicy commits its own Work; lookups take the lock from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "audit_log.h"
#include "catalog.h"
#include "kms_context.h"

namespace keyline::wire {
struct CertificateBudgetRequest;
}  // namespace keyline::wire

namespace keyline::kms {

// The policy a plant gets for an OEM until `keylinectl plant ca budget` sets another.
inline constexpr uint32_t kDefaultBudgetMin = 250;
inline constexpr uint32_t kDefaultBudgetTarget = 1000;

struct CertificateBudgetSpec {
  std::string plant;
  std::string oem;
  uint32_t min = kDefaultBudgetMin;
  uint32_t target = kDefaultBudgetTarget;
  uint64_t granted = 0;   // in total
  uint64_t recorded = 0;  // certificates seen in the plant's injection records
  uint64_t grants = 0;    // grants made
  // Granted and not yet seen in a record: what the plant may hold unreported.
  uint64_t outstanding() const { return granted > recorded ? granted - recorded : 0; }
};

class CertificateBudgets {
 public:
  CertificateBudgets(KmsContext* context, Catalog* catalog, AuditLog* audit)
      : context_(context), catalog_(catalog), audit_(audit) {}

  [[nodiscard]] Status Load();

  // Sets the policy of `plant` for `oem` (target 0 stops further grants; min <= target) and
  // ships it in the plant's ConfigUpdate.
  [[nodiscard]] StatusOr<CertificateBudgetSpec> SetPolicy(const std::string& plant, const std::string& oem,
                                                          uint32_t min, uint32_t target,
                                                          const std::string& actor);

  // A plant's CertificateBudgetRequest: answers with a CertificateBudgetGrant (possibly of 0) in
  // the same write. A request id answered before gets the same grant again, whenever it comes.
  [[nodiscard]] Status HandleRequest(const std::string& plant, const wire::CertificateBudgetRequest& request,
                                     broker::WriteContext& write);

  // A record of `plant` carried a certificate of `oem` (call last in the record's Work).
  void CountRecorded(const std::string& plant, const std::string& oem, broker::WriteContext& write);

  // The policy of (plant, oem): set, or the defaults.
  std::pair<uint32_t, uint32_t> PolicyFor(const std::string& plant, const std::string& oem) const;
  // Every (plant, oem) the KMS holds a budget for, for the status page.
  std::vector<CertificateBudgetSpec> All() const;

 private:
  CertificateBudgetSpec& EntryLocked(const std::string& plant, const std::string& oem);
  void PutLocked(broker::WriteContext& write, const CertificateBudgetSpec& budget);
  // Memory may be ahead of the disk after a failed group write: reload (caller holds mu_).
  void ReloadAfterFailedWriteLocked();
  [[nodiscard]] Status LoadLocked();

  KmsContext* context_;
  Catalog* catalog_;
  AuditLog* audit_;
  mutable std::mutex mu_;
  FailedWriteWatch failed_writes_;
  std::map<std::pair<std::string, std::string>, CertificateBudgetSpec> budgets_;  // (plant, oem)
  struct Answer {
    std::string oem, grant_id;
    uint32_t count = 0;
  };
  // Every request answered, by (plant, request id): a request seen again gets the same grant.
  std::map<std::pair<std::string, std::string>, Answer> answered_;
};

}  // namespace keyline::kms

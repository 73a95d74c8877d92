// Allocator: answers a plant's StockRequest with key sets from stock, oldest import first,
// sealed for that plant (docs/key-flow.md), in the same write as their move to SHIPPED.
//
// Runs inside the link's group write on the store's commit thread. Key sets taken by a write
// that is not yet committed are remembered, so two requests in one group never get the same
// key set; a write that fails leaves them in stock (they become available after a restart).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "audit_log.h"
#include "catalog.h"
#include "kms_context.h"
#include "keyline/wire/kms_pks_generated.h"

namespace keyline::kms {

// Most key sets in one StockBatch: keeps the message well below the 1 MiB frame limit.
inline constexpr uint32_t kMaxKeySetsPerShipment = 2000;

class Allocator {
 public:
  Allocator(KmsContext* context, Catalog* catalog, AuditLog* audit)
      : context_(context), catalog_(catalog), audit_(audit) {}

  [[nodiscard]] Status Load();

  // Handles one StockRequest from `plant`. An error refuses the message (dead letter).
  [[nodiscard]] Status HandleStockRequest(const std::string& plant, const wire::StockRequest& request,
                                          broker::WriteContext& write);

 private:
  KmsContext* context_;
  Catalog* catalog_;
  AuditLog* audit_;
  uint64_t next_shipment_ = 1;
  // Stock keys taken by writes not yet seen committed (commit thread only).
  std::set<std::string> taken_;
  // Request keys answered by writes not yet seen committed.
  std::set<std::string> answered_;
  uint64_t writes_seen_ = 0;
};

}  // namespace keyline::kms

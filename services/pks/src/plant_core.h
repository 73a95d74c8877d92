// What the PKS's message handlers share: the plant's state, its keys, its message store.
//
// Every handler below runs on the message store's commit thread inside a Work function (a
// link delivery or a Submit), with `mu` held, so handlers never race each other; other threads
// take `mu` to read a consistent snapshot.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "keyline/broker/link.h"
#include "keyline/broker/message_store.h"
#include "plant_keys.h"
#include "plant_state.h"

namespace keyline::pks {

// Peer and stream names (docs/key-flow.md).
inline constexpr char kKmsPeer[] = "kms";
inline constexpr char kRecordsStream[] = "records";
inline constexpr char kControlStream[] = "control";
inline constexpr char kRequestsStream[] = "requests";
inline constexpr char kPackagesStream[] = "packages";

struct PlantTiming {
  int64_t stock_request_retry_us = 600'000'000;
  int64_t short_stock_backoff_us = 60'000'000;
};

struct PlantCore {
  std::string plant_id;
  broker::Database* database = nullptr;
  broker::MessageStore* store = nullptr;
  PlantKeys* keys = nullptr;
  std::unique_ptr<PlantState> state;
  PlantTiming timing;
  std::function<int64_t()> now_us;
  std::mutex mu;
  // Per product: no new StockRequest before this time (the KMS answered short).
  std::map<std::string, int64_t> short_until_us;
  // Per OEM: no new CertificateBudgetRequest before this time (the KMS granted less).
  std::map<std::string, int64_t> budget_short_until_us;
  // Set by a handler that queued a StockRequest: the KMS link should make contact now.
  std::atomic<bool> contact_wanted{false};
  // Failed group writes seen so far; a change means memory may be ahead of the database.
  uint64_t failed_writes_seen = 0;

  // Reloads `state` from the database if a group write failed since the last call: a failed
  // write took back changes that memory had already made. Call first in every handler.
  [[nodiscard]] Status SyncWithDatabase();
};

// --- link handlers (delivery from a station / from the KMS) ---
[[nodiscard]] Status HandleStationDelivery(PlantCore& core, const broker::Delivery& delivery,
                                           broker::WriteContext& write);
[[nodiscard]] Status HandleKmsDelivery(PlantCore& core, const broker::Delivery& delivery,
                                       broker::WriteContext& write);

// --- periodic work (Submit'ed by the service's maintenance thread) ---
// Burns reservations past their deadline (at most `max` per call); returns how many.
[[nodiscard]] StatusOr<size_t> BurnExpiredReservations(PlantCore& core, broker::WriteContext& write,
                                                       size_t max);
// Queues StockRequests where stock is low, re-sends requests unanswered for too long.
[[nodiscard]] Status ReplenishAll(PlantCore& core, broker::WriteContext& write);
// Queues a PlantStatus for the KMS.
[[nodiscard]] Status SendPlantStatus(PlantCore& core, broker::WriteContext& write);

// --- shared steps ---
// A reservation's package id is "pkg-" + its key set id: the one place that knows it.
std::string PackageIdFor(const std::string& key_set_id);
// The key set a package id names, or null.
const KeySet* KeySetOfPackage(const PlantState& state, std::string_view package_id);

// A new id for a request to the KMS: "<plant>-<16 random hex digits>".
std::string NewRequestId(const std::string& plant_id);

// Queues a StockRequest for `product` if its stock plus what is requested is below its
// minimum (and the KMS did not just answer short).
[[nodiscard]] Status Replenish(PlantCore& core, broker::WriteContext& write,
                               const std::string& product);
// --- the issuing budget (certificate_budget.cc, docs/certificates.md) ---
// Asks the KMS for more of `oem`'s budget when fewer than the CA's budget_min are available
// (one request per OEM at a time, none while the KMS just granted short).
[[nodiscard]] Status ReplenishBudget(PlantCore& core, broker::WriteContext& write,
                                     const std::string& oem);
// Re-sends budget requests unanswered for too long and asks where low.
[[nodiscard]] Status ReplenishBudgets(PlantCore& core, broker::WriteContext& write);
// A CertificateBudgetGrant from the KMS, applied once per grant id.
[[nodiscard]] Status ApplyCertificateBudgetGrant(PlantCore& core, const broker::Delivery& delivery,
                                                 broker::WriteContext& write);

// The PKS's verdict on a reservation's certificate slot (docs/certificates.md).
struct CertificateVerdict {
  bool confirmed = false;             // the ECU's confirmation verifies with the certificate
  std::vector<uint8_t> confirmation;  // as reported (kept in the record even when wrong)
  std::string problem;                // "certificate slot identity: ..."; empty if confirmed
};

// Decides a reserved key set: INJECTED when every verdict is proven (and, for a product with a
// certificate slot, `certificate` is confirmed), else BURNED with `burn_reason` (or the
// verdicts' problems). Signs the InjectionRecord, with the issued certificate if any, and
// queues it for the KMS in the same write as the state change.
[[nodiscard]] Status RecordOutcome(PlantCore& core, broker::WriteContext& write, KeySet key_set,
                                   const std::vector<SlotVerdict>& verdicts,
                                   std::string burn_reason,
                                   const CertificateVerdict* certificate = nullptr);

}  // namespace keyline::pks

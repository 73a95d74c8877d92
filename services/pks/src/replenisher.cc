// Keeping stock up: StockRequests when a product runs low, re-sent when unanswered; and the
// PlantStatus the KMS sees.
#include <flatbuffers/flatbuffers.h>

#include <random>
#include <set>

#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/schemas/build.h"
#include "keyline/wire/kms_pks_generated.h"
#include "plant_core.h"

namespace keyline::pks {

std::string NewRequestId(const std::string& plant_id) {
  std::random_device random;
  std::array<uint8_t, 8> bytes{};
  for (auto& b : bytes) b = static_cast<uint8_t>(random());
  return plant_id + "-" + ToHex(bytes);
}

namespace {

Status SendStockRequest(broker::WriteContext& write, const StockRequestEntry& request) {
  flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Finish(wire::CreateStockRequest(fbb, fbb.CreateString(request.request_id),
                                      fbb.CreateString(request.product), request.count));
  return write.Send({kKmsPeer, kControlStream}, wire::MessageType::StockRequest,
                    schemas::FinishedBytes(fbb))
      .status();
}

}  // namespace

Status Replenish(PlantCore& core, broker::WriteContext& write, const std::string& product_name) {
  auto product = core.state->config().products.find(product_name);
  if (product == core.state->config().products.end()) return Status::Ok();
  ProductCounts counts = core.state->Counts(product_name);
  // Ask when stock plus what is already on its way falls below the minimum, so a request is
  // not repeated while one is outstanding; ask for enough to reach the target.
  if (counts.in_stock + counts.requested >= product->second.min_stock) return Status::Ok();
  int64_t now = core.now_us();
  auto short_until = core.short_until_us.find(product_name);
  if (short_until != core.short_until_us.end() && now < short_until->second) return Status::Ok();
  uint64_t wanted = product->second.target_stock - counts.in_stock - counts.requested;
  if (wanted == 0) return Status::Ok();
  StockRequestEntry request;
  request.request_id = NewRequestId(core.plant_id);
  request.product = product_name;
  request.count = static_cast<uint32_t>(wanted);
  request.sent_at_us = now;
  RETURN_IF_ERROR(SendStockRequest(write, request));
  spdlog::info("stock of \"{}\" at {} (+{} requested) is below {}: asked the KMS for {} (request {})",
               product_name, counts.in_stock, counts.requested, product->second.min_stock, wanted,
               request.request_id);
  core.state->PutStockRequest(write.batch(), std::move(request));
  core.contact_wanted.store(true);
  return Status::Ok();
}

Status ReplenishAll(PlantCore& core, broker::WriteContext& write) {
  std::lock_guard lock(core.mu);
  RETURN_IF_ERROR(core.SyncWithDatabase());
  int64_t now = core.now_us();
  // Requests the KMS never answered (it lost them, or was restored from a backup) go again
  // under the same id; the KMS answers an id once.
  std::vector<StockRequestEntry> stale;
  for (const auto& [id, request] : core.state->stock_requests()) {
    if (now - request.sent_at_us >= core.timing.stock_request_retry_us) stale.push_back(request);
  }
  for (StockRequestEntry& request : stale) {
    RETURN_IF_ERROR(SendStockRequest(write, request));
    spdlog::warn("stock request {} unanswered for {} s: sent again", request.request_id,
                 (now - request.sent_at_us) / 1'000'000);
    request.sent_at_us = now;
    core.state->PutStockRequest(write.batch(), std::move(request));
    core.contact_wanted.store(true);
  }
  for (const auto& [name, product] : core.state->config().products) {
    RETURN_IF_ERROR(Replenish(core, write, name));
  }
  return ReplenishBudgets(core, write);
}

Status SendPlantStatus(PlantCore& core, broker::WriteContext& write) {
  flatbuffers::FlatBufferBuilder fbb(512);
  std::vector<flatbuffers::Offset<wire::ProductStock>> stock;
  for (const std::string& name : core.state->ProductNames()) {
    ProductCounts c = core.state->Counts(name);
    stock.push_back(wire::CreateProductStock(fbb, fbb.CreateString(name), c.in_stock, c.reserved,
                                             c.requested, c.injected, c.burned));
  }
  std::vector<flatbuffers::Offset<wire::QueueDepth>> queues;
  for (const broker::OutboxQueueStats& q : core.store->OutboxStats()) {
    queues.push_back(wire::CreateQueueDepth(fbb, fbb.CreateString(q.queue.peer),
                                            fbb.CreateString(q.queue.stream), q.depth(), 0));
  }
  std::set<std::string> oems;
  for (const auto& [oem, budget] : core.state->budgets()) oems.insert(oem);
  for (const auto& [oem, ca] : core.state->config().issuing_cas) oems.insert(oem);
  std::vector<flatbuffers::Offset<wire::CertificateBudgetLevel>> budgets;
  for (const std::string& oem : oems) {
    const BudgetLevel level = core.state->BudgetLevelOf(oem);
    budgets.push_back(wire::CreateCertificateBudgetLevel(fbb, fbb.CreateString(oem), level.granted,
                                                         level.issued, level.pending, level.requested));
  }
  fbb.Finish(wire::CreatePlantStatus(fbb, fbb.CreateString(core.plant_id),
                                     core.state->config().version, fbb.CreateVector(stock),
                                     fbb.CreateVector(queues), fbb.CreateVector(budgets)));
  return write.Send({kKmsPeer, kControlStream}, wire::MessageType::PlantStatus,
                    schemas::FinishedBytes(fbb))
      .status();
}

}  // namespace keyline::pks

#include "certificate_budgets.h"

#include <cstdlib>
#include <memory>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "json_text.h"
#include "keyline/common/log.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/kms_pks_generated.h"
#include "keyline/wire/kms_store_generated.h"
#include "store_layout.h"

namespace keyline::kms {
namespace {

constexpr char kBudgetPrefix[] = "cert-budget/";
// "cert-budget-answer/<plant>/<request id>" -> "<oem>\n<grant id>\n<count>"
constexpr char kAnswerPrefix[] = "cert-budget-answer/";

std::string BudgetKey(const std::string& plant, const std::string& oem) {
  return kBudgetPrefix + plant + "/" + oem;
}

}  // namespace

Status CertificateBudgets::Load() {
  std::lock_guard lock(mu_);
  failed_writes_.Arm(*context_);
  return LoadLocked();
}

Status CertificateBudgets::LoadLocked() {
  budgets_.clear();
  std::unique_ptr<rocksdb::Iterator> it(context_->database->db()->NewIterator(
      rocksdb::ReadOptions(), context_->Family(layout::kCatalog)));
  for (it->Seek(kBudgetPrefix); it->Valid() && it->key().starts_with(kBudgetPrefix); it->Next()) {
    const std::string key = it->key().ToString();
    const std::string copy = it->value().ToString();  // aligned for FlatBuffers
    ASSIGN_OR_RETURN(const wire::KmsCertificateBudget* stored,
                     schemas::DecodeVerified<wire::KmsCertificateBudget>(AsBytes(copy), key));
    CertificateBudgetSpec budget;
    budget.plant = std::string(schemas::Text(stored->plant()));
    budget.oem = std::string(schemas::Text(stored->oem()));
    budget.min = stored->min();
    budget.target = stored->target();
    budget.granted = stored->granted();
    budget.recorded = stored->recorded();
    budget.grants = stored->grants();
    budgets_[{budget.plant, budget.oem}] = std::move(budget);
  }
  answered_.clear();
  for (it->Seek(kAnswerPrefix); it->Valid() && it->key().starts_with(kAnswerPrefix); it->Next()) {
    const std::string key = it->key().ToString().substr(sizeof(kAnswerPrefix) - 1);
    const std::string value = it->value().ToString();
    const size_t slash = key.find('/');
    const size_t first = value.find('\n');
    const size_t second = first == std::string::npos ? std::string::npos : value.find('\n', first + 1);
    if (slash == std::string::npos || second == std::string::npos) {
      return DataLossError("catalog/" + std::string(kAnswerPrefix) + key + ": malformed");
    }
    answered_[{key.substr(0, slash), key.substr(slash + 1)}] = {
        value.substr(0, first), value.substr(first + 1, second - first - 1),
        static_cast<uint32_t>(std::strtoul(value.c_str() + second + 1, nullptr, 10))};
  }
  if (!it->status().ok()) return UnavailableError("reading the issuing budgets: " + it->status().ToString());
  return Status::Ok();
}

void CertificateBudgets::ReloadAfterFailedWriteLocked() {
  if (!failed_writes_.FailedSinceLastLook(*context_)) return;
  Status reloaded = LoadLocked();
  if (!reloaded.ok()) spdlog::error("kms: reloading the issuing budgets after a failed write: {}", reloaded.ToString());
}

CertificateBudgetSpec& CertificateBudgets::EntryLocked(const std::string& plant, const std::string& oem) {
  auto [it, inserted] = budgets_.try_emplace({plant, oem});
  if (inserted) {
    it->second.plant = plant;
    it->second.oem = oem;
  }
  return it->second;
}

void CertificateBudgets::PutLocked(broker::WriteContext& write, const CertificateBudgetSpec& b) {
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(wire::CreateKmsCertificateBudgetDirect(fbb, b.plant.c_str(), b.oem.c_str(), b.min, b.target,
                                                    b.granted, b.recorded, b.grants));
  write.batch().Put(context_->Family(layout::kCatalog), BudgetKey(b.plant, b.oem), FinishedText(fbb));
}

StatusOr<CertificateBudgetSpec> CertificateBudgets::SetPolicy(const std::string& plant, const std::string& oem,
                                                              uint32_t min, uint32_t target,
                                                              const std::string& actor) {
  if (!catalog_->Plant(plant)) return NotFoundError("plant " + plant + " is not registered");
  if (!catalog_->Oem(oem)) return NotFoundError("OEM " + oem + " is not registered");
  if (min > target) {
    return InvalidArgumentError("issuing budget of " + plant + " for " + oem + ": min " + std::to_string(min) +
                                " is above target " + std::to_string(target));
  }
  CertificateBudgetSpec result;
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    std::unique_lock lock(mu_);
    ReloadAfterFailedWriteLocked();
    CertificateBudgetSpec& budget = EntryLocked(plant, oem);
    budget.min = min;
    budget.target = target;
    PutLocked(write, budget);
    audit_->Append(write, actor, "certificate_budget.policy", plant + "/" + oem,
                   "{\"min\":" + std::to_string(min) + ",\"target\":" + std::to_string(target) + "}");
    result = budget;
    lock.unlock();  // the ConfigUpdate reads PolicyFor
    return catalog_->QueuePlantConfig(plant, write);
  });
  RETURN_IF_ERROR(committed);
  return result;
}

Status CertificateBudgets::HandleRequest(const std::string& plant, const wire::CertificateBudgetRequest& request,
                                         broker::WriteContext& write) {
  const std::string request_id(schemas::Text(request.request_id()));
  const std::string oem(schemas::Text(request.oem()));
  if (request_id.empty() || request_id.size() > 128) {
    return InvalidArgumentError("CertificateBudgetRequest from " + plant + ": the request id must be 1 to 128 bytes");
  }
  if (!catalog_->Oem(oem)) {
    return NotFoundError("CertificateBudgetRequest " + request_id + " from " + plant + ": OEM \"" + oem +
                         "\" is not registered");
  }
  std::lock_guard lock(mu_);
  ReloadAfterFailedWriteLocked();
  auto send = [&](const std::string& grant_oem, const std::string& grant_id, uint32_t count) {
    flatbuffers::FlatBufferBuilder fbb(256);
    fbb.Finish(wire::CreateCertificateBudgetGrantDirect(fbb, request_id.c_str(), grant_id.c_str(), plant.c_str(),
                                                        grant_oem.c_str(), count));
    return write.Send({plant, "control"}, wire::MessageType::CertificateBudgetGrant, schemas::FinishedBytes(fbb))
        .status();
  };
  if (auto seen = answered_.find({plant, request_id}); seen != answered_.end()) {
    // The plant asked again (it did not hear back in time): the same grant, which it applies once.
    spdlog::info("kms: CertificateBudgetRequest {} from {} answered before: grant {} sent again", request_id,
                 plant, seen->second.grant_id);
    return send(seen->second.oem, seen->second.grant_id, seen->second.count);
  }
  CertificateBudgetSpec& budget = EntryLocked(plant, oem);
  const uint64_t room = budget.target > budget.outstanding() ? budget.target - budget.outstanding() : 0;
  const uint32_t count = static_cast<uint32_t>(std::min<uint64_t>(request.count(), room));
  const std::string grant_id = plant + "/" + oem + "/" + std::to_string(budget.grants + 1);
  RETURN_IF_ERROR(send(oem, grant_id, count));
  write.batch().Put(context_->Family(layout::kCatalog), kAnswerPrefix + plant + "/" + request_id,
                    oem + "\n" + grant_id + "\n" + std::to_string(count));
  answered_[{plant, request_id}] = {oem, grant_id, count};
  budget.granted += count;
  ++budget.grants;
  PutLocked(write, budget);
  audit_->Append(write, plant, "certificate_budget.grant", grant_id,
                 "{\"oem\":" + JsonQuote(oem) + ",\"asked\":" + std::to_string(request.count()) +
                     ",\"granted\":" + std::to_string(count) + ",\"outstanding\":" +
                     std::to_string(budget.outstanding()) + "}");
  if (count < request.count()) {
    spdlog::warn("kms: {} asked for {} certificates of {}, granted {}: {} granted and not yet recorded, target {}",
                 plant, request.count(), oem, count, budget.outstanding(), budget.target);
  } else {
    spdlog::info("kms: granted {} {} certificates of {} ({})", plant, count, oem, grant_id);
  }
  return Status::Ok();
}

void CertificateBudgets::CountRecorded(const std::string& plant, const std::string& oem,
                                       broker::WriteContext& write) {
  std::lock_guard lock(mu_);
  ReloadAfterFailedWriteLocked();
  CertificateBudgetSpec& budget = EntryLocked(plant, oem);
  ++budget.recorded;
  PutLocked(write, budget);
}

std::pair<uint32_t, uint32_t> CertificateBudgets::PolicyFor(const std::string& plant, const std::string& oem) const {
  std::lock_guard lock(mu_);
  auto it = budgets_.find({plant, oem});
  if (it == budgets_.end()) return {kDefaultBudgetMin, kDefaultBudgetTarget};
  return {it->second.min, it->second.target};
}

std::vector<CertificateBudgetSpec> CertificateBudgets::All() const {
  std::lock_guard lock(mu_);
  std::vector<CertificateBudgetSpec> out;
  for (const auto& [key, budget] : budgets_) out.push_back(budget);
  return out;
}

}  // namespace keyline::kms

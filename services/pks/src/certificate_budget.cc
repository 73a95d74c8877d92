// The plant's issuing budget (docs/certificates.md): the KMS grants a number of ECU
// certificates per OEM, the PKS issues at most that many, and asks for more when few remain,
// like key stock. A stolen plant box can mint no more than what was granted and not yet spent.
#include <flatbuffers/flatbuffers.h>

#include "keyline/common/log.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/kms_pks_generated.h"
#include "plant_core.h"

namespace keyline::pks {
namespace {

Status SendBudgetRequest(broker::WriteContext& write, const CertificateBudget& budget) {
  flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Finish(wire::CreateCertificateBudgetRequestDirect(fbb, budget.request_id.c_str(),
                                                        budget.oem.c_str(), budget.requested));
  return write.Send({kKmsPeer, kControlStream}, wire::MessageType::CertificateBudgetRequest,
                    schemas::FinishedBytes(fbb))
      .status();
}

}  // namespace

Status ReplenishBudget(PlantCore& core, broker::WriteContext& write, const std::string& oem) {
  auto ca = core.state->config().issuing_cas.find(oem);
  if (ca == core.state->config().issuing_cas.end() || ca->second.budget_target == 0) return Status::Ok();
  CertificateBudget budget = core.state->Budget(oem);
  if (!budget.request_id.empty()) return Status::Ok();  // one request at a time
  const BudgetLevel level = core.state->BudgetLevelOf(oem);
  if (level.available() >= ca->second.budget_min) return Status::Ok();
  const int64_t now = core.now_us();
  auto short_until = core.budget_short_until_us.find(oem);
  if (short_until != core.budget_short_until_us.end() && now < short_until->second) return Status::Ok();
  const uint64_t wanted = ca->second.budget_target - std::min<uint64_t>(level.available(), ca->second.budget_target);
  if (wanted == 0) return Status::Ok();
  budget.request_id = NewRequestId(core.plant_id);
  budget.requested = static_cast<uint32_t>(wanted);
  budget.request_sent_at_us = now;
  RETURN_IF_ERROR(SendBudgetRequest(write, budget));
  spdlog::info("issuing budget of OEM \"{}\": {} left ({}), below {}: asked the KMS for {} (request {})",
               oem, level.available(), level.Describe(), ca->second.budget_min, wanted, budget.request_id);
  core.state->PutBudget(write.batch(), std::move(budget));
  core.contact_wanted.store(true);
  return Status::Ok();
}

Status ReplenishBudgets(PlantCore& core, broker::WriteContext& write) {
  const int64_t now = core.now_us();
  // A request the KMS never answered goes again under the same id; the KMS answers an id once.
  std::vector<CertificateBudget> stale;
  for (const auto& [oem, budget] : core.state->budgets()) {
    if (!budget.request_id.empty() && now - budget.request_sent_at_us >= core.timing.stock_request_retry_us) {
      stale.push_back(budget);
    }
  }
  for (CertificateBudget& budget : stale) {
    RETURN_IF_ERROR(SendBudgetRequest(write, budget));
    spdlog::warn("issuing budget request {} unanswered for {} s: sent again", budget.request_id,
                 (now - budget.request_sent_at_us) / 1'000'000);
    budget.request_sent_at_us = now;
    core.state->PutBudget(write.batch(), std::move(budget));
    core.contact_wanted.store(true);
  }
  for (const auto& [oem, ca] : core.state->config().issuing_cas) {
    RETURN_IF_ERROR(ReplenishBudget(core, write, oem));
  }
  return Status::Ok();
}

Status ApplyCertificateBudgetGrant(PlantCore& core, const broker::Delivery& delivery,
                                   broker::WriteContext& write) {
  ASSIGN_OR_RETURN(const wire::CertificateBudgetGrant* grant,
                   schemas::DecodeMessage<wire::CertificateBudgetGrant>(delivery.payload));
  const std::string grant_id(schemas::Text(grant->grant_id()));
  const std::string plant(schemas::Text(grant->plant()));
  const std::string oem(schemas::Text(grant->oem()));
  const std::string request_id(schemas::Text(grant->request_id()));
  if (grant_id.empty() || oem.empty()) {
    return InvalidArgumentError("CertificateBudgetGrant without a grant id or an OEM");
  }
  if (plant != core.plant_id) {
    return PermissionDeniedError("CertificateBudgetGrant " + grant_id + " is for plant \"" + plant +
                                 "\", not \"" + core.plant_id + "\"");
  }
  if (core.state->GrantApplied(grant_id)) {
    spdlog::info("CertificateBudgetGrant {} already applied; skipped", grant_id);
    return Status::Ok();
  }
  CertificateBudget budget = core.state->Budget(oem);
  if (!request_id.empty() && request_id == budget.request_id) {
    if (grant->count() < budget.requested) {
      spdlog::warn("the KMS granted {} of the {} certificates of OEM \"{}\" asked for in {}",
                   grant->count(), budget.requested, oem, request_id);
      core.budget_short_until_us[oem] = core.now_us() + core.timing.short_stock_backoff_us;
    }
    budget.request_id.clear();
    budget.requested = 0;
    budget.request_sent_at_us = 0;
  }
  budget.granted += grant->count();
  core.state->PutBudget(write.batch(), budget);
  core.state->PutGrantApplied(write.batch(), grant_id);
  const BudgetLevel level = core.state->BudgetLevelOf(oem);
  spdlog::info("CertificateBudgetGrant {} applied: {} more certificates for OEM \"{}\", {} available ({})",
               grant_id, grant->count(), oem, level.available(), level.Describe());
  RETURN_IF_ERROR(ReplenishBudget(core, write, oem));
  return SendPlantStatus(core, write);
}

}  // namespace keyline::pks

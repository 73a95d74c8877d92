// What the KMS sends a plant: configuration, stock, verification barriers.
#include <flatbuffers/flatbuffers.h>

#include "keyline/common/log.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/kms_pks_generated.h"
#include "plant_core.h"

namespace keyline::pks {
namespace {

Status ApplyConfigUpdate(PlantCore& core, const broker::Delivery& delivery,
                         broker::WriteContext& write) {
  ASSIGN_OR_RETURN(const wire::ConfigUpdate* update,
                   schemas::DecodeMessage<wire::ConfigUpdate>(delivery.payload));
  if (update->version() <= core.state->config().version) {
    spdlog::info("ConfigUpdate version {} ignored: version {} is applied", update->version(),
                 core.state->config().version);
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(PlantConfig config, ParsePlantConfig(*update, core.plant_id));
  if (!config.has_sync_policy) {
    config.has_sync_policy = core.state->config().has_sync_policy;
    config.sync_continuous = core.state->config().sync_continuous;
    config.sync_interval_s = core.state->config().sync_interval_s;
  }
  for (const auto& [name, product] : config.products) {
    if (core.state->TransportKey(product.transport_key_ref) == nullptr) {
      spdlog::error("product \"{}\" needs transport key \"{}\", which is not in this plant's HSM; "
                    "import it with keyline-pks transport-key import",
                    name, product.transport_key_ref);
    }
  }
  for (const auto& [oem, ca] : config.issuing_cas) {
    Status usable = core.keys->CheckIssuingCa(ca);
    if (!usable.ok()) {
      spdlog::error("issuing CA for OEM \"{}\" not usable; no certificates for it will be issued: {}", oem,
                    usable.ToString());
    } else {
      spdlog::info("issuing CA {} for OEM \"{}\" installed", ca.key_name, oem);
    }
  }
  uint64_t version = config.version;
  core.state->PutConfig(write.batch(), delivery.payload, std::move(config));
  spdlog::info("configuration version {} applied: {} products, {} stations, {} issuing CAs", version,
               core.state->config().products.size(), core.state->config().stations.size(),
               core.state->config().issuing_cas.size());
  for (const auto& [name, product] : core.state->config().products) {
    RETURN_IF_ERROR(Replenish(core, write, name));
  }
  for (const auto& [oem, ca] : core.state->config().issuing_cas) {
    RETURN_IF_ERROR(ReplenishBudget(core, write, oem));
  }
  return SendPlantStatus(core, write);
}

Status ApplyStockBatch(PlantCore& core, const broker::Delivery& delivery,
                       broker::WriteContext& write) {
  ASSIGN_OR_RETURN(const wire::StockBatch* batch,
                   schemas::DecodeMessage<wire::StockBatch>(delivery.payload));
  std::string batch_id(schemas::Text(batch->batch_id()));
  std::string plant(schemas::Text(batch->plant()));
  std::string product(schemas::Text(batch->product()));
  if (batch_id.empty()) return InvalidArgumentError("StockBatch without a batch_id");
  if (plant != core.plant_id) {
    return PermissionDeniedError("StockBatch " + batch_id + " is for plant \"" + plant +
                                 "\", not \"" + core.plant_id + "\"");
  }
  if (core.state->BatchApplied(batch_id)) {
    spdlog::info("StockBatch {} already applied; skipped", batch_id);
    return Status::Ok();
  }
  std::vector<KeySet> received;
  uint64_t order = core.state->next_stock_order();
  int64_t now = core.now_us();
  if (batch->key_sets() != nullptr) {
    for (const wire::WrappedKeySet* wrapped : *batch->key_sets()) {
      KeySet ks;
      ks.id = std::string(schemas::Text(wrapped->key_set_id()));
      if (ks.id.empty()) return InvalidArgumentError("StockBatch " + batch_id + ": a key set has no id");
      // Invariant 1: a key set id seen before is never stocked again.
      if (core.state->Find(ks.id) != nullptr) {
        return AlreadyExistsError("StockBatch " + batch_id + " repeats key set " + ks.id +
                                  ", which this plant already holds");
      }
      auto blob = schemas::Bytes(wrapped->wrapped());
      auto slots = schemas::Bytes(wrapped->slots());
      if (blob.empty() || slots.empty()) {
        return InvalidArgumentError("StockBatch " + batch_id + ": key set " + ks.id +
                                    " has no keys or no slots");
      }
      ks.product = product;
      ks.batch_id = batch_id;
      ks.wrapped.assign(blob.begin(), blob.end());
      ks.slots.assign(slots.begin(), slots.end());
      ks.state = KeySetState::kInStock;
      ks.stock_order = order++;
      ks.received_at_us = now;
      received.push_back(std::move(ks));
    }
  }
  // One key set opened as a sample: a batch sealed for another plant's HSM is refused whole
  // instead of being burned one ECU at a time.
  if (!received.empty()) {
    Status sample = core.keys->CheckOpens(core.plant_id, received.front());
    if (!sample.ok()) {
      if (sample.code() == StatusCode::kDataLoss ||
          sample.code() == StatusCode::kPermissionDenied) {
        return PermissionDeniedError("StockBatch " + batch_id + ": key set " +
                                     received.front().id + " does not open with this plant's "
                                     "HSM key: " + sample.message());
      }
      return UnavailableError("StockBatch " + batch_id + ": " + sample.message());
    }
  }

  std::string request_id(schemas::Text(batch->request_id()));
  auto request = core.state->stock_requests().find(request_id);
  if (request != core.state->stock_requests().end() && received.size() < request->second.count) {
    spdlog::warn("the KMS answered request {} for {} key sets of \"{}\" with {}", request_id,
                 request->second.count, product, received.size());
    core.short_until_us[product] = now + core.timing.short_stock_backoff_us;
  }
  size_t count = received.size();
  for (KeySet& ks : received) core.state->PutKeySet(write.batch(), std::move(ks));
  core.state->EraseStockRequest(write.batch(), request_id);
  core.state->PutBatchApplied(write.batch(), batch_id);
  spdlog::info("StockBatch {} applied: {} key sets of \"{}\"", batch_id, count, product);
  RETURN_IF_ERROR(Replenish(core, write, product));
  return SendPlantStatus(core, write);
}

Status AnswerVerificationRequest(PlantCore& core, const broker::Delivery& delivery,
                                 broker::WriteContext& write) {
  ASSIGN_OR_RETURN(const wire::VerificationRequest* request,
                   schemas::DecodeMessage<wire::VerificationRequest>(delivery.payload));
  flatbuffers::FlatBufferBuilder fbb(128);
  // Records and the watermark share one ordered stream, so every record up to this sequence
  // reaches the KMS before the watermark does.
  fbb.Finish(wire::CreateVerificationWatermark(
      fbb, fbb.CreateString(schemas::Text(request->barrier_id())), core.state->record_sequence()));
  RETURN_IF_ERROR(write.Send({kKmsPeer, kRecordsStream}, wire::MessageType::VerificationWatermark,
                             schemas::FinishedBytes(fbb))
                      .status());
  spdlog::info("verification barrier {} answered at record {}",
               schemas::Text(request->barrier_id()), core.state->record_sequence());
  return Status::Ok();
}

Status AnswerPlantCaRequest(PlantCore& core, const broker::Delivery& delivery,
                            broker::WriteContext& write) {
  ASSIGN_OR_RETURN(const wire::PlantCaRequest* request,
                   schemas::DecodeMessage<wire::PlantCaRequest>(delivery.payload));
  const std::string request_id(schemas::Text(request->request_id()));
  const std::string key_name(schemas::Text(request->key_name()));
  if (request_id.empty() || !key_name.starts_with("plant-ca/")) {
    return InvalidArgumentError("PlantCaRequest \"" + request_id + "\": needs a request id and a plant-ca/ key name, "
                                "got \"" + key_name + "\"");
  }
  RETURN_IF_ERROR(schemas::CheckFixedBytes(request->challenge(), schemas::kCaChallengeBytes,
                                           "PlantCaRequest " + request_id + ": challenge"));
  hsm::CertificateSubject subject;
  subject.organization = std::string(schemas::Text(request->organization()));
  subject.organizational_unit = std::string(schemas::Text(request->organizational_unit()));
  subject.common_name = std::string(schemas::Text(request->common_name()));
  // The same key name gives the same key, so answering a repeated request again is harmless.
  ASSIGN_OR_RETURN(std::string csr, core.keys->IssuingCaCsr(key_name, subject, schemas::Bytes(request->challenge())));
  flatbuffers::FlatBufferBuilder fbb(csr.size() + 128);
  fbb.Finish(wire::CreatePlantCaCsrDirect(fbb, request_id.c_str(), csr.c_str()));
  RETURN_IF_ERROR(write.Send({kKmsPeer, kControlStream}, wire::MessageType::PlantCaCsr,
                             schemas::FinishedBytes(fbb))
                      .status());
  spdlog::info("issuing CA {}: key ready in the HSM, CSR sent to the KMS (request {})", key_name, request_id);
  return Status::Ok();
}

}  // namespace

Status HandleKmsDelivery(PlantCore& core, const broker::Delivery& delivery,
                         broker::WriteContext& write) {
  std::lock_guard lock(core.mu);
  RETURN_IF_ERROR(core.SyncWithDatabase());
  switch (delivery.type) {
    case wire::MessageType::ConfigUpdate:
      return ApplyConfigUpdate(core, delivery, write);
    case wire::MessageType::StockBatch:
      return ApplyStockBatch(core, delivery, write);
    case wire::MessageType::VerificationRequest:
      return AnswerVerificationRequest(core, delivery, write);
    case wire::MessageType::PlantCaRequest:
      return AnswerPlantCaRequest(core, delivery, write);
    case wire::MessageType::CertificateBudgetGrant:
      return ApplyCertificateBudgetGrant(core, delivery, write);
    default:
      return InvalidArgumentError("the KMS sent a " + schemas::MessageTypeName(delivery.type) +
                                  ", which a PKS does not take from the KMS");
  }
}

}  // namespace keyline::pks

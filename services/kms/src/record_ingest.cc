#include "record_ingest.h"

#include <memory>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include "json_text.h"
#include "keyline/common/hex.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/kms_store_generated.h"
#include "store_layout.h"

namespace keyline::kms {

Status RecordIngest::Load() {
  std::lock_guard lock(mu_);
  std::unique_ptr<rocksdb::Iterator> it(
      context_->database->db()->NewIterator(rocksdb::ReadOptions(), context_->Family(layout::kMeta)));
  const std::string prefix = "records_through/";
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    through_[it->key().ToString().substr(prefix.size())] = layout::ReadU64(it->value().ToStringView());
  }
  return Status::Ok();
}

uint64_t RecordIngest::AppliedThrough(const std::string& plant) const {
  std::lock_guard lock(mu_);
  auto it = through_.find(plant);
  return it == through_.end() ? 0 : it->second;
}

std::map<std::string, RecordCounters> RecordIngest::Counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

Status RecordIngest::Refuse(const std::string& plant, Status why) {
  {
    std::lock_guard lock(mu_);
    ++counters_[plant].refused;
  }
  spdlog::warn("kms: refused an InjectionRecord from {}: {}", plant, why.message());
  return why;
}

Status RecordIngest::Apply(const std::string& plant_id, std::span<const uint8_t> payload,
                           broker::WriteContext& write) {
  auto decoded = schemas::DecodeInjectionRecord(payload);
  if (!decoded.ok()) return Refuse(plant_id, decoded.status());
  const schemas::VerifiedRecord& record = *decoded;
  const wire::InjectionRecordBody* body = record.body;
  if (body == nullptr) return Refuse(plant_id, InvalidArgumentError("record body is missing"));
  if (schemas::Text(record.record->signer()) != plant_id) {
    return Refuse(plant_id, PermissionDeniedError("record signer '" +
                                                  std::string(schemas::Text(record.record->signer()).substr(0, 64)) +
                                                  "' is not the sending plant"));
  }
  std::optional<PlantSpec> plant = catalog_->Plant(plant_id);
  if (!plant) return Refuse(plant_id, NotFoundError("plant is not registered"));
  hsm::Signature signature{};
  std::copy(record.signature.begin(), record.signature.end(), signature.begin());
  if (!hsm::VerifySignature(plant->signing_key, record.signed_bytes, signature).ok()) {
    return Refuse(plant_id, UnauthenticatedError("record " + std::to_string(body->record_sequence()) +
                                                 ": signature does not verify with the plant's signing key"));
  }
  if (schemas::Text(body->plant()) != plant_id) {
    return Refuse(plant_id, PermissionDeniedError("record names plant '" +
                                                  std::string(schemas::Text(body->plant()).substr(0, 64)) +
                                                  "', not the sender"));
  }
  const uint64_t sequence = body->record_sequence();
  if (sequence == 0) return Refuse(plant_id, InvalidArgumentError("record_sequence is 0"));
  const std::string record_key = layout::RecordKey(plant_id, sequence);

  // Forget pending entries whose writes have committed (only after a write has: inside one
  // group nothing can have committed).
  if (const uint64_t writes = context_->store->counters().writes; writes != writes_seen_) {
    writes_seen_ = writes;
    for (auto it = pending_records_.begin(); it != pending_records_.end();) {
      ASSIGN_OR_RETURN(auto done, context_->Get(layout::kRecords, *it));
      it = done ? pending_records_.erase(it) : std::next(it);
    }
  }
  ASSIGN_OR_RETURN(auto seen, context_->Get(layout::kRecords, record_key));
  if (seen || pending_records_.count(record_key)) {
    std::lock_guard lock(mu_);
    ++counters_[plant_id].duplicates;
    return Status::Ok();  // applied before: at-least-once delivery, exactly-once effect
  }

  const std::string key_set_id(schemas::Text(body->key_set_id()));
  if (pending_key_sets_.count(key_set_id)) {
    // Another record for this key set is in a write not yet committed.
    ASSIGN_OR_RETURN(auto current, context_->Get(layout::kKeySets, key_set_id));
    bool committed = false;
    if (current) {
      auto ks = schemas::DecodeVerified<wire::KmsKeySet>(AsBytes(*current), "key set record");
      committed = ks.ok() && (*ks)->state() != wire::KeySetState::SHIPPED;
    }
    if (!committed) {
      return Refuse(plant_id, FailedPreconditionError("key set " + key_set_id +
                                                      " already has a record in this write"));
    }
    pending_key_sets_.erase(key_set_id);
  }
  ASSIGN_OR_RETURN(auto stored, context_->Get(layout::kKeySets, key_set_id));
  if (!stored) {
    return Refuse(plant_id, NotFoundError("record " + std::to_string(sequence) + ": unknown key set '" +
                                          key_set_id.substr(0, 80) + "'"));
  }
  ASSIGN_OR_RETURN(const wire::KmsKeySet* key_set,
                   schemas::DecodeVerified<wire::KmsKeySet>(AsBytes(*stored), "key set record"));
  if (key_set->state() != wire::KeySetState::SHIPPED || schemas::Text(key_set->plant()) != plant_id) {
    std::string where = key_set->state() == wire::KeySetState::IMPORTED
                            ? "was never shipped"
                            : (schemas::Text(key_set->plant()) != plant_id
                                   ? "was shipped to another plant"
                                   : "already has an outcome (record " +
                                         std::to_string(key_set->record_sequence()) + ")");
    return Refuse(plant_id, FailedPreconditionError("record " + std::to_string(sequence) + ": key set " +
                                                    key_set_id + " " + where));
  }
  if (schemas::Text(body->product()) != schemas::Text(key_set->product())) {
    return Refuse(plant_id, InvalidArgumentError("record " + std::to_string(sequence) + ": product does not match key set " +
                                                 key_set_id));
  }
  const bool injected = body->outcome() == wire::RecordOutcome::INJECTED;
  if (!injected && body->outcome() != wire::RecordOutcome::BURNED) {
    return Refuse(plant_id, InvalidArgumentError("record " + std::to_string(sequence) + ": outcome is neither INJECTED nor BURNED"));
  }
  if (Status uid = schemas::CheckFixedBytes(body->ecu_uid(), schemas::kEcuUidBytes, "record ecu_uid"); !uid.ok()) {
    return Refuse(plant_id, uid);
  }
  if (injected) {
    if (body->slots() == nullptr || key_set->keys() == nullptr || body->slots()->size() != key_set->keys()->size()) {
      return Refuse(plant_id, InvalidArgumentError("record " + std::to_string(sequence) +
                                                   ": INJECTED needs one proof per slot of the key set"));
    }
    for (const auto* slot : *body->slots()) {
      Status m4 = schemas::CheckFixedBytes(slot->m4(), schemas::kM4Bytes, "record slot m4");
      Status m5 = schemas::CheckFixedBytes(slot->m5(), schemas::kM5Bytes, "record slot m5");
      if (!m4.ok() || !m5.ok()) return Refuse(plant_id, m4.ok() ? m5 : m4);
    }
  }

  // Apply: key set outcome, index by plant, the record itself, and its place for verification.
  flatbuffers::FlatBufferBuilder fbb(1024);
  std::vector<flatbuffers::Offset<wire::StoredSlotKey>> keys;
  for (const auto* key : *key_set->keys()) {
    keys.push_back(wire::CreateStoredSlotKey(fbb, key->slot(), fbb.CreateVector(key->wrapped()->data(), key->wrapped()->size())));
  }
  fbb.Finish(wire::CreateKmsKeySet(
      fbb, fbb.CreateString(key_set->key_set_id()), fbb.CreateString(key_set->oem()),
      fbb.CreateString(key_set->product()), fbb.CreateString(key_set->batch_id()), key_set->import_order(),
      injected ? wire::KeySetState::INJECTED : wire::KeySetState::BURNED, fbb.CreateVector(keys),
      fbb.CreateString(plant_id), fbb.CreateString(key_set->shipment_id()), key_set->shipped_at_us(), sequence,
      fbb.CreateVector(body->ecu_uid()->data(), body->ecu_uid()->size()), fbb.CreateString(body->burn_reason())));
  const std::string product(schemas::Text(key_set->product()));
  const std::string oem(schemas::Text(key_set->oem()));
  write.batch().Put(context_->Family(layout::kKeySets), key_set_id, FinishedText(fbb));
  write.batch().Delete(context_->Family(layout::kShipped), layout::ShippedKey(plant_id, product, 'S', key_set_id));
  write.batch().Put(context_->Family(layout::kShipped),
                    layout::ShippedKey(plant_id, product, injected ? 'I' : 'B', key_set_id), "");
  write.batch().Put(context_->Family(layout::kRecords), record_key, AsText(payload));
  if (injected) write.batch().Put(context_->Family(layout::kRecords), layout::InjectedKey(oem, plant_id, sequence), "");
  uint64_t through;
  {
    std::lock_guard lock(mu_);
    through = std::max(through_[plant_id], sequence);
    through_[plant_id] = through;
    ++counters_[plant_id].applied;
  }
  write.batch().Put(context_->Family(layout::kMeta), "records_through/" + plant_id, layout::U64(through));
  pending_records_.insert(record_key);
  pending_key_sets_.insert(key_set_id);
  if (body->certificate() != nullptr && !schemas::Text(body->certificate()->certificate()).empty()) {
    budgets_->CountRecorded(plant_id, oem, write);
  }
  audit_->Append(write, plant_id, injected ? "keyset.injected" : "keyset.burned", key_set_id,
                 "{\"record\":" + std::to_string(sequence) + ",\"ecu_uid\":\"" +
                     ToHex(schemas::Bytes(body->ecu_uid())) + "\",\"station\":" +
                     JsonQuote(schemas::Text(body->station())) +
                     (injected ? "" : ",\"reason\":" + JsonQuote(schemas::Text(body->burn_reason()))) + "}");
  return Status::Ok();
}

}  // namespace keyline::kms

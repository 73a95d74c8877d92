#include "plant_state.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "keyline/broker/database.h"
#include "keyline/common/log.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/kms_pks_generated.h"
#include "keyline/wire/pks_store_generated.h"

namespace keyline::pks {
namespace {

constexpr char kConfigKey[] = "config";
constexpr char kRecordSequenceKey[] = "record_sequence";
constexpr char kRequestPrefix[] = "request/";
constexpr char kBatchPrefix[] = "batch/";
constexpr char kTransportPrefix[] = "transport/";
constexpr char kBudgetPrefix[] = "cert-budget/";
constexpr char kGrantPrefix[] = "cert-grant/";

std::string EncodeU64(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return out;
}

StatusOr<uint64_t> DecodeU64(const std::string& bytes, std::string_view what) {
  if (bytes.size() != 8) return DataLossError(std::string(what) + ": stored value is not 8 bytes");
  uint64_t value = 0;
  for (char c : bytes) value = (value << 8) | static_cast<uint8_t>(c);
  return value;
}

std::span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

rocksdb::Slice AsSlice(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

void Check(const rocksdb::Status& status) {
  // WriteBatch::Put only fails on sizes beyond 4 GiB, which no Keyline record approaches.
  if (!status.ok()) spdlog::critical("WriteBatch refused a put: {}", status.ToString());
}

std::vector<uint8_t> EncodeKeySet(const KeySet& ks) {
  flatbuffers::FlatBufferBuilder fbb(256 + ks.wrapped.size());
  flatbuffers::Offset<wire::StoredReservation> reservation = 0;
  if (ks.reservation) {
    const Reservation& r = *ks.reservation;
    std::vector<flatbuffers::Offset<wire::SlotLayout>> layout;
    for (const SlotConfig& slot : r.layout) {
      layout.push_back(
          wire::CreateSlotLayout(fbb, slot.slot, slot.auth_slot, slot.counter, slot.flags));
    }
    std::vector<flatbuffers::Offset<wire::ExpectedProof>> proofs;
    for (size_t i = 0; i < r.expected_proofs.size() && i < r.layout.size(); ++i) {
      proofs.push_back(wire::CreateExpectedProof(fbb, r.layout[i].slot,
                                                 schemas::CreateBytes(fbb, r.expected_proofs[i].m4),
                                                 schemas::CreateBytes(fbb, r.expected_proofs[i].m5)));
    }
    flatbuffers::Offset<wire::StoredCertificate> certificate = 0;
    if (r.certificate) {
      const ReservedCertificate& c = *r.certificate;
      certificate = wire::CreateStoredCertificate(
          fbb, schemas::CreateCertificateSlot(fbb, c.slot), schemas::CreateBytes(fbb, c.challenge),
          fbb.CreateString(c.certificate), fbb.CreateString(c.chain),
          c.confirm_challenge.empty() ? 0 : schemas::CreateBytes(fbb, c.confirm_challenge),
          c.issued_at_us, fbb.CreateString(c.issuing_ca));
    }
    reservation = wire::CreateStoredReservation(
        fbb, fbb.CreateString(r.package_id), fbb.CreateString(r.request_id),
        fbb.CreateString(r.station), schemas::CreateBytes(fbb, r.ecu_uid), r.reserved_at_us,
        r.deadline_us, fbb.CreateVector(layout), proofs.empty() ? 0 : fbb.CreateVector(proofs),
        certificate);
  }
  auto root = wire::CreateStoredKeySet(
      fbb, fbb.CreateString(ks.id), fbb.CreateString(ks.product), fbb.CreateString(ks.batch_id),
      schemas::CreateBytes(fbb, ks.wrapped), schemas::CreateBytes(fbb, ks.slots),
      static_cast<wire::KeySetState>(ks.state), ks.stock_order, ks.received_at_us, reservation,
      ks.decided_at_us, fbb.CreateString(ks.burn_reason), ks.record_sequence);
  fbb.Finish(root);
  auto bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

StatusOr<KeySet> DecodeKeySet(std::span<const uint8_t> bytes, const std::string& key) {
  std::string what = "keysets/" + key;
  ASSIGN_OR_RETURN(const wire::StoredKeySet* stored,
                   schemas::DecodeVerified<wire::StoredKeySet>(bytes, what));
  KeySet ks;
  ks.id = std::string(schemas::Text(stored->key_set_id()));
  ks.product = std::string(schemas::Text(stored->product()));
  ks.batch_id = std::string(schemas::Text(stored->batch_id()));
  auto wrapped = schemas::Bytes(stored->wrapped());
  ks.wrapped.assign(wrapped.begin(), wrapped.end());
  auto slots = schemas::Bytes(stored->slots());
  ks.slots.assign(slots.begin(), slots.end());
  uint8_t state = static_cast<uint8_t>(stored->state());
  if (state < 1 || state > 4) {
    return DataLossError(what + ": unknown key set state " + std::to_string(state));
  }
  ks.state = static_cast<KeySetState>(state);
  ks.stock_order = stored->stock_order();
  ks.received_at_us = stored->received_at_us();
  if (const wire::StoredReservation* r = stored->reservation()) {
    Reservation reservation;
    reservation.package_id = std::string(schemas::Text(r->package_id()));
    reservation.request_id = std::string(schemas::Text(r->request_id()));
    reservation.station = std::string(schemas::Text(r->station()));
    RETURN_IF_ERROR(schemas::CheckFixedBytes(r->ecu_uid(), schemas::kEcuUidBytes,
                                             what + " reservation.ecu_uid"));
    std::copy_n(r->ecu_uid()->data(), reservation.ecu_uid.size(), reservation.ecu_uid.begin());
    reservation.reserved_at_us = r->reserved_at_us();
    reservation.deadline_us = r->deadline_us();
    if (r->layout() != nullptr) {
      for (const wire::SlotLayout* slot : *r->layout()) {
        reservation.layout.push_back(
            SlotConfig{slot->slot(), slot->auth_slot(), slot->counter(), slot->flags()});
      }
    }
    if (reservation.layout.empty()) return DataLossError(what + ": reservation without a layout");
    if (r->expected_proofs() != nullptr) {
      if (r->expected_proofs()->size() != reservation.layout.size()) {
        return DataLossError(what + ": expected proofs do not match the layout");
      }
      for (const wire::ExpectedProof* proof : *r->expected_proofs()) {
        RETURN_IF_ERROR(schemas::CheckFixedBytes(proof->m4(), schemas::kM4Bytes, what + " m4"));
        RETURN_IF_ERROR(schemas::CheckFixedBytes(proof->m5(), schemas::kM5Bytes, what + " m5"));
        hsm::SheProof expected;
        std::copy_n(proof->m4()->data(), expected.m4.size(), expected.m4.begin());
        std::copy_n(proof->m5()->data(), expected.m5.size(), expected.m5.begin());
        reservation.expected_proofs.push_back(expected);
      }
    }
    if (const wire::StoredCertificate* c = r->certificate()) {
      if (c->slot() == nullptr) return DataLossError(what + ": certificate without its slot");
      ReservedCertificate certificate;
      ASSIGN_OR_RETURN(certificate.slot, schemas::ReadCertificateSlot(*c->slot(), what));
      RETURN_IF_ERROR(schemas::CheckFixedBytes(c->challenge(), schemas::kCertificateChallengeBytes,
                                               what + " certificate challenge"));
      auto challenge = schemas::Bytes(c->challenge());
      certificate.challenge.assign(challenge.begin(), challenge.end());
      certificate.certificate = std::string(schemas::Text(c->certificate()));
      certificate.chain = std::string(schemas::Text(c->chain()));
      if (certificate.issued()) {
        RETURN_IF_ERROR(schemas::CheckFixedBytes(c->confirm_challenge(),
                                                 schemas::kCertificateChallengeBytes,
                                                 what + " certificate confirm_challenge"));
        auto confirm = schemas::Bytes(c->confirm_challenge());
        certificate.confirm_challenge.assign(confirm.begin(), confirm.end());
      }
      certificate.issued_at_us = c->issued_at_us();
      certificate.issuing_ca = std::string(schemas::Text(c->issuing_ca()));
      reservation.certificate = std::move(certificate);
    }
    ks.reservation = std::move(reservation);
  }
  if (ks.id != key) return DataLossError(what + ": holds key set \"" + ks.id + "\"");
  if (ks.state != KeySetState::kInStock && !ks.reservation) {
    return DataLossError(what + ": " + KeySetStateName(ks.state) + " without a reservation");
  }
  ks.decided_at_us = stored->decided_at_us();
  ks.burn_reason = std::string(schemas::Text(stored->burn_reason()));
  ks.record_sequence = stored->record_sequence();
  return ks;
}

std::vector<uint8_t> EncodeRequest(const StockRequestEntry& request) {
  flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Finish(wire::CreateStoredStockRequest(fbb, fbb.CreateString(request.request_id),
                                            fbb.CreateString(request.product), request.count,
                                            request.sent_at_us));
  auto bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

StatusOr<StockRequestEntry> DecodeRequest(std::span<const uint8_t> bytes, const std::string& key) {
  ASSIGN_OR_RETURN(const wire::StoredStockRequest* stored,
                   schemas::DecodeVerified<wire::StoredStockRequest>(bytes, "meta/" + key));
  StockRequestEntry request;
  request.request_id = std::string(schemas::Text(stored->request_id()));
  request.product = std::string(schemas::Text(stored->product()));
  request.count = stored->count();
  request.sent_at_us = stored->sent_at_us();
  return request;
}

std::vector<uint8_t> EncodeBudget(const CertificateBudget& budget) {
  flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Finish(wire::CreateStoredCertificateBudgetDirect(fbb, budget.oem.c_str(), budget.granted,
                                                       budget.issued, budget.request_id.c_str(),
                                                       budget.requested, budget.request_sent_at_us));
  auto bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

StatusOr<CertificateBudget> DecodeBudget(std::span<const uint8_t> bytes, const std::string& key) {
  ASSIGN_OR_RETURN(const wire::StoredCertificateBudget* stored,
                   schemas::DecodeVerified<wire::StoredCertificateBudget>(bytes, "meta/" + key));
  CertificateBudget budget;
  budget.oem = std::string(schemas::Text(stored->oem()));
  budget.granted = stored->granted();
  budget.issued = stored->issued();
  budget.request_id = std::string(schemas::Text(stored->request_id()));
  budget.requested = stored->requested();
  budget.request_sent_at_us = stored->request_sent_at_us();
  if (budget.oem.empty() || budget.issued > budget.granted) {
    return DataLossError("meta/" + key + ": a budget without its OEM, or more issued than granted");
  }
  return budget;
}

}  // namespace

std::vector<std::string> PksColumnFamilies() { return {kKeySetsFamily, kMetaFamily}; }

const char* KeySetStateName(KeySetState state) {
  switch (state) {
    case KeySetState::kInStock: return "IN_STOCK";
    case KeySetState::kReserved: return "RESERVED";
    case KeySetState::kInjected: return "INJECTED";
    case KeySetState::kBurned: return "BURNED";
  }
  return "UNKNOWN";
}

StatusOr<std::unique_ptr<PlantState>> PlantState::Load(broker::Database* database,
                                                       const std::string& plant_id) {
  std::unique_ptr<PlantState> state(new PlantState(database, plant_id));
  rocksdb::ReadOptions read;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        database->db()->NewIterator(read, database->Family(kKeySetsFamily)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string key = it->key().ToString();
      ASSIGN_OR_RETURN(KeySet ks, DecodeKeySet(AsBytes(it->value().ToString()), key));
      state->last_stock_order_ = std::max(state->last_stock_order_, ks.stock_order);
      state->Index(ks);
      state->key_sets_.emplace(key, std::move(ks));
    }
    if (!it->status().ok()) {
      return DataLossError("reading key sets: " + it->status().ToString());
    }
  }
  std::unique_ptr<rocksdb::Iterator> it(
      database->db()->NewIterator(read, database->Family(kMetaFamily)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string key = it->key().ToString();
    std::string value = it->value().ToString();
    if (key == kConfigKey) {
      auto config = ParsePlantConfig(AsBytes(value), plant_id);
      if (!config.ok()) return DataLossError("stored configuration: " + config.status().message());
      state->config_ = std::move(*config);
      if (state->plant_id_.empty()) {
        auto update = schemas::DecodeMessage<wire::ConfigUpdate>(AsBytes(value));
        if (update.ok()) state->plant_id_ = std::string(schemas::Text((*update)->plant()));
      }
    } else if (key == kRecordSequenceKey) {
      ASSIGN_OR_RETURN(state->record_sequence_, DecodeU64(value, key));
    } else if (key.rfind(kRequestPrefix, 0) == 0) {
      ASSIGN_OR_RETURN(StockRequestEntry request, DecodeRequest(AsBytes(value), key));
      state->counts_[request.product].requested += request.count;
      state->requests_.emplace(request.request_id, std::move(request));
    } else if (key.rfind(kBatchPrefix, 0) == 0) {
      state->batches_.insert(key.substr(sizeof(kBatchPrefix) - 1));
    } else if (key.rfind(kBudgetPrefix, 0) == 0) {
      ASSIGN_OR_RETURN(CertificateBudget budget, DecodeBudget(AsBytes(value), key));
      std::string oem = budget.oem;
      state->budgets_.emplace(std::move(oem), std::move(budget));
    } else if (key.rfind(kGrantPrefix, 0) == 0) {
      state->grants_.insert(key.substr(sizeof(kGrantPrefix) - 1));
    } else if (key.rfind(kTransportPrefix, 0) == 0) {
      state->transport_keys_[key.substr(sizeof(kTransportPrefix) - 1)] =
          std::vector<uint8_t>(value.begin(), value.end());
    } else {
      return DataLossError("meta/" + key + ": unknown record (written by a newer release?)");
    }
  }
  if (!it->status().ok()) return DataLossError("reading meta: " + it->status().ToString());
  return state;
}

std::string PlantState::EcuKey(const std::string& product, const hsm::SheUid& uid) {
  std::string key = product;
  key.push_back('\0');
  key.append(reinterpret_cast<const char*>(uid.data()), uid.size());
  return key;
}

void PlantState::Index(const KeySet& ks) {
  ProductCounts& counts = counts_[ks.product];
  switch (ks.state) {
    case KeySetState::kInStock:
      in_stock_[ks.product][ks.stock_order] = ks.id;
      ++counts.in_stock;
      break;
    case KeySetState::kReserved:
      deadlines_.emplace(ks.reservation->deadline_us, ks.id);
      ++counts.reserved;
      break;
    case KeySetState::kInjected: ++counts.injected; break;
    case KeySetState::kBurned: ++counts.burned; break;
  }
  // A key set burned before it reached any ECU carries the all-zero UID: no ECU to index.
  if (ks.reservation && !hsm::IsWildcardUid(ks.reservation->ecu_uid)) {
    by_ecu_[EcuKey(ks.product, ks.reservation->ecu_uid)] = ks.id;
  }
  if (ks.reservation && ks.reservation->certificate && ks.reservation->certificate->issued()) {
    ++counts.certificates;
  }
  if (ks.state == KeySetState::kReserved && ks.reservation->certificate &&
      !ks.reservation->certificate->issued()) {
    ++counts.certificates_pending;
  }
}

void PlantState::Unindex(const KeySet& ks) {
  ProductCounts& counts = counts_[ks.product];
  switch (ks.state) {
    case KeySetState::kInStock:
      in_stock_[ks.product].erase(ks.stock_order);
      --counts.in_stock;
      break;
    case KeySetState::kReserved:
      deadlines_.erase({ks.reservation->deadline_us, ks.id});
      --counts.reserved;
      break;
    case KeySetState::kInjected: --counts.injected; break;
    case KeySetState::kBurned: --counts.burned; break;
  }
  if (ks.reservation && !hsm::IsWildcardUid(ks.reservation->ecu_uid)) {
    by_ecu_.erase(EcuKey(ks.product, ks.reservation->ecu_uid));
  }
  if (ks.reservation && ks.reservation->certificate && ks.reservation->certificate->issued()) {
    --counts.certificates;
  }
  if (ks.state == KeySetState::kReserved && ks.reservation->certificate &&
      !ks.reservation->certificate->issued()) {
    --counts.certificates_pending;
  }
}

const KeySet* PlantState::Find(const std::string& key_set_id) const {
  auto it = key_sets_.find(key_set_id);
  return it == key_sets_.end() ? nullptr : &it->second;
}

const KeySet* PlantState::FindByEcu(const std::string& product, const hsm::SheUid& uid) const {
  auto it = by_ecu_.find(EcuKey(product, uid));
  return it == by_ecu_.end() ? nullptr : Find(it->second);
}

const KeySet* PlantState::OldestInStock(const std::string& product) const {
  auto it = in_stock_.find(product);
  if (it == in_stock_.end() || it->second.empty()) return nullptr;
  return Find(it->second.begin()->second);
}

std::vector<const KeySet*> PlantState::ExpiredReservations(int64_t now_us, size_t max) const {
  std::vector<const KeySet*> expired;
  for (const auto& [deadline, id] : deadlines_) {
    if (deadline > now_us || expired.size() >= max) break;
    expired.push_back(Find(id));
  }
  return expired;
}

std::vector<std::string> PlantState::ProductNames() const {
  std::set<std::string> names;
  for (const auto& [name, product] : config_.products) names.insert(name);
  for (const auto& [name, counts] : counts_) names.insert(name);
  return {names.begin(), names.end()};
}

ProductCounts PlantState::Counts(const std::string& product) const {
  auto it = counts_.find(product);
  return it == counts_.end() ? ProductCounts{} : it->second;
}

CertificateBudget PlantState::Budget(const std::string& oem) const {
  auto it = budgets_.find(oem);
  if (it != budgets_.end()) return it->second;
  CertificateBudget none;
  none.oem = oem;
  return none;
}

BudgetLevel PlantState::BudgetLevelOf(const std::string& oem) const {
  const CertificateBudget budget = Budget(oem);
  BudgetLevel level;
  level.granted = budget.granted;
  level.issued = budget.issued;
  level.requested = budget.requested;
  for (const auto& [name, product] : config_.products) {
    if (product.oem == oem) level.pending += Counts(name).certificates_pending;
  }
  return level;
}

std::string BudgetLevel::Describe() const {
  return std::to_string(granted) + " granted, " + std::to_string(issued) + " issued, " +
         std::to_string(pending) + " held by reservations";
}

const std::vector<uint8_t>* PlantState::TransportKey(const std::string& ref) const {
  auto it = transport_keys_.find(ref);
  return it == transport_keys_.end() ? nullptr : &it->second;
}

void PlantState::PutKeySet(rocksdb::WriteBatch& batch, KeySet ks) {
  Check(batch.Put(database_->Family(kKeySetsFamily), ks.id, AsSlice(EncodeKeySet(ks))));
  auto it = key_sets_.find(ks.id);
  if (it != key_sets_.end()) {
    Unindex(it->second);
    key_sets_.erase(it);
  }
  // Key sets are never deleted, so the highest order is always derivable from them.
  last_stock_order_ = std::max(last_stock_order_, ks.stock_order);
  Index(ks);
  std::string id = ks.id;
  key_sets_.emplace(std::move(id), std::move(ks));
}

void PlantState::PutConfig(rocksdb::WriteBatch& batch, std::span<const uint8_t> update_bytes,
                           PlantConfig config) {
  Check(batch.Put(database_->Family(kMetaFamily), kConfigKey, AsSlice(update_bytes)));
  config_ = std::move(config);
}

void PlantState::PutStockRequest(rocksdb::WriteBatch& batch, StockRequestEntry request) {
  Check(batch.Put(database_->Family(kMetaFamily), kRequestPrefix + request.request_id,
                  AsSlice(EncodeRequest(request))));
  auto it = requests_.find(request.request_id);
  if (it != requests_.end()) counts_[it->second.product].requested -= it->second.count;
  counts_[request.product].requested += request.count;
  requests_[request.request_id] = std::move(request);
}

void PlantState::EraseStockRequest(rocksdb::WriteBatch& batch, const std::string& request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return;
  Check(batch.Delete(database_->Family(kMetaFamily), kRequestPrefix + request_id));
  counts_[it->second.product].requested -= it->second.count;
  requests_.erase(it);
}

void PlantState::PutBatchApplied(rocksdb::WriteBatch& batch, const std::string& batch_id) {
  Check(batch.Put(database_->Family(kMetaFamily), kBatchPrefix + batch_id, ""));
  batches_.insert(batch_id);
}

void PlantState::PutRecordSequence(rocksdb::WriteBatch& batch, uint64_t sequence) {
  Check(batch.Put(database_->Family(kMetaFamily), kRecordSequenceKey, EncodeU64(sequence)));
  record_sequence_ = sequence;
}

void PlantState::PutBudget(rocksdb::WriteBatch& batch, CertificateBudget budget) {
  Check(batch.Put(database_->Family(kMetaFamily), kBudgetPrefix + budget.oem,
                  AsSlice(EncodeBudget(budget))));
  std::string oem = budget.oem;
  budgets_[oem] = std::move(budget);
}

void PlantState::PutGrantApplied(rocksdb::WriteBatch& batch, const std::string& grant_id) {
  Check(batch.Put(database_->Family(kMetaFamily), kGrantPrefix + grant_id, ""));
  grants_.insert(grant_id);
}

void PlantState::PutTransportKey(rocksdb::WriteBatch& batch, const std::string& ref,
                                 std::vector<uint8_t> wrapped) {
  Check(batch.Put(database_->Family(kMetaFamily), kTransportPrefix + ref,
                  rocksdb::Slice(reinterpret_cast<const char*>(wrapped.data()), wrapped.size())));
  transport_keys_[ref] = std::move(wrapped);
}

}  // namespace keyline::pks

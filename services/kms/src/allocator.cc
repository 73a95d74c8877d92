#include "allocator.h"

#include <memory>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/kms_store_generated.h"
#include "json_text.h"
#include "store_layout.h"

namespace keyline::kms {

Status Allocator::Load() {
  ASSIGN_OR_RETURN(auto next, context_->Get(layout::kMeta, "next_shipment"));
  if (next) next_shipment_ = layout::ReadU64(*next);
  return Status::Ok();
}

Status Allocator::HandleStockRequest(const std::string& plant_id, const wire::StockRequest& request,
                                     broker::WriteContext& write) {
  const std::string request_id(schemas::Text(request.request_id()));
  const std::string product_name(schemas::Text(request.product()));
  if (request_id.empty()) return InvalidArgumentError("StockRequest from " + plant_id + ": request_id is missing");
  std::optional<PlantSpec> plant = catalog_->Plant(plant_id);
  if (!plant) return NotFoundError("StockRequest from unregistered plant " + plant_id);
  std::optional<ProductSpec> product = catalog_->Product(product_name);
  if (!product) {
    return NotFoundError("StockRequest " + request_id + " from " + plant_id + ": unknown product '" +
                         product_name.substr(0, 64) + "'");
  }
  const std::string request_key = layout::RequestKey(plant_id, request_id);
  ASSIGN_OR_RETURN(auto answered, context_->Get(layout::kRecords, request_key));
  if (answered || answered_.count(request_key)) {
    spdlog::info("kms: StockRequest {} from {} was answered before by shipment {}; not shipping again",
                 request_id, plant_id, *answered);
    return Status::Ok();
  }

  // Forget taken keys whose write has committed (their stock entry is gone). Only after a
  // write has committed: inside one group nothing can have.
  if (const uint64_t writes = context_->store->counters().writes; writes != writes_seen_) {
    writes_seen_ = writes;
    for (auto it = taken_.begin(); it != taken_.end();) {
      ASSIGN_OR_RETURN(auto still, context_->Get(layout::kStock, *it));
      it = still ? std::next(it) : taken_.erase(it);
    }
    for (auto it = answered_.begin(); it != answered_.end();) {
      ASSIGN_OR_RETURN(auto done, context_->Get(layout::kRecords, *it));
      it = done ? answered_.erase(it) : std::next(it);
    }
  }

  const uint32_t wanted = std::min(request.count(), kMaxKeySetsPerShipment);
  struct Pick {
    std::string stock_key;
    std::string key_set_id;
  };
  std::vector<Pick> picks;
  {
    const std::string prefix = layout::StockPrefix(product_name);
    std::unique_ptr<rocksdb::Iterator> it(
        context_->database->db()->NewIterator(rocksdb::ReadOptions(), context_->Family(layout::kStock)));
    for (it->Seek(prefix); it->Valid() && picks.size() < wanted; it->Next()) {
      if (!it->key().starts_with(prefix)) break;
      std::string key = it->key().ToString();
      if (taken_.count(key)) continue;
      picks.push_back({std::move(key), it->value().ToString()});
    }
    if (!it->status().ok()) return UnavailableError("reading stock: " + it->status().ToString());
  }

  const std::string shipment_id = plant_id + "-s" + std::to_string(next_shipment_);
  const int64_t now = NowUs();
  flatbuffers::FlatBufferBuilder fbb(4096 + picks.size() * 256);
  std::vector<flatbuffers::Offset<wire::WrappedKeySet>> sets;
  flatbuffers::FlatBufferBuilder record(512);
  std::string ids_json;
  for (const Pick& pick : picks) {
    ASSIGN_OR_RETURN(auto stored, context_->Get(layout::kKeySets, pick.key_set_id));
    if (!stored) return DataLossError("stock entry for key set " + pick.key_set_id + " has no key set record");
    ASSIGN_OR_RETURN(const wire::KmsKeySet* key_set,
                     schemas::DecodeVerified<wire::KmsKeySet>(AsBytes(*stored), "key set record"));
    if (key_set->state() != wire::KeySetState::IMPORTED) {
      return DataLossError("key set " + pick.key_set_id + " is in stock but not IMPORTED");
    }
    std::vector<hsm::KeyHandle> handles;
    std::vector<uint8_t> slots;
    auto destroy = [&] {
      for (const hsm::KeyHandle& h : handles) (void)context_->custody->DestroyKey(h);
    };
    if (key_set->keys() != nullptr) {
      for (const auto* key : *key_set->keys()) {
        std::span<const uint8_t> blob = schemas::Bytes(key->wrapped());
        auto handle = context_->custody->UnwrapFromStorage(
            hsm::WrappedKey{{blob.begin(), blob.end()}},
            "keyset/" + pick.key_set_id + "/slot/" + std::to_string(key->slot()));
        if (!handle.ok()) {
          destroy();
          return handle.status().WithContext("key set " + pick.key_set_id);
        }
        handles.push_back(*handle);
        slots.push_back(key->slot());
      }
    }
    auto sealed = context_->custody->WrapForPeer(handles, plant->wrap_key,
                                                 "keyset/" + pick.key_set_id + "/plant/" + plant_id);
    destroy();
    if (!sealed.ok()) return sealed.status().WithContext("sealing key set " + pick.key_set_id + " for " + plant_id);
    sets.push_back(wire::CreateWrappedKeySet(fbb, fbb.CreateString(pick.key_set_id),
                                             schemas::CreateBytes(fbb, sealed->bytes), fbb.CreateVector(slots)));

    // The key set's record, now SHIPPED to this plant.
    record.Clear();
    std::vector<flatbuffers::Offset<wire::StoredSlotKey>> keys;
    for (const auto* key : *key_set->keys()) {
      keys.push_back(wire::CreateStoredSlotKey(record, key->slot(),
                                               record.CreateVector(key->wrapped()->data(), key->wrapped()->size())));
    }
    record.Finish(wire::CreateKmsKeySet(
        record, record.CreateString(key_set->key_set_id()), record.CreateString(key_set->oem()),
        record.CreateString(key_set->product()), record.CreateString(key_set->batch_id()),
        key_set->import_order(), wire::KeySetState::SHIPPED, record.CreateVector(keys),
        record.CreateString(plant_id), record.CreateString(shipment_id), now));
    write.batch().Put(context_->Family(layout::kKeySets), pick.key_set_id, FinishedText(record));
    write.batch().Delete(context_->Family(layout::kStock), pick.stock_key);
    write.batch().Put(context_->Family(layout::kShipped),
                      layout::ShippedKey(plant_id, product_name, 'S', pick.key_set_id), "");
    if (!ids_json.empty()) ids_json += ",";
    ids_json += "\"" + pick.key_set_id + "\"";
  }
  fbb.Finish(wire::CreateStockBatch(fbb, fbb.CreateString(request_id), fbb.CreateString(shipment_id),
                                    fbb.CreateString(plant_id), fbb.CreateString(product_name),
                                    fbb.CreateVector(sets)));
  RETURN_IF_ERROR(write.Send({plant_id, "control"}, wire::MessageType::StockBatch, schemas::FinishedBytes(fbb))
                      .status());
  write.batch().Put(context_->Family(layout::kRecords), request_key, shipment_id);
  ++next_shipment_;
  write.batch().Put(context_->Family(layout::kMeta), "next_shipment", layout::U64(next_shipment_));
  if (picks.size() < request.count()) {
    const std::string alert = "short stock: " + plant_id + " asked for " + std::to_string(request.count()) +
                              " key sets of " + product_name + ", shipped " + std::to_string(picks.size()) +
                              (picks.size() < wanted ? " (KMS stock is empty)" : " (shipment limit)");
    if (picks.size() < wanted) {
      write.batch().Put(context_->Family(layout::kMeta), "alert/" + product_name, alert);
      spdlog::warn("kms: {}", alert);
    }
  }
  for (const Pick& pick : picks) taken_.insert(pick.stock_key);
  answered_.insert(request_key);
  audit_->Append(write, plant_id, "keysets.shipped", shipment_id,
                 "{\"plant\":\"" + plant_id + "\",\"product\":\"" + product_name + "\",\"request\":" +
                     JsonQuote(request_id) + ",\"requested\":" + std::to_string(request.count()) + ",\"key_sets\":[" +
                     ids_json + "]}");
  return Status::Ok();
}

}  // namespace keyline::kms

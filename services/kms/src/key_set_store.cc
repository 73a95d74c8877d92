#include "key_set_store.h"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include "keyline/kms/batch_file.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/kms_store_generated.h"
#include "keyline/wire/oem_batch_generated.h"
#include "store_layout.h"

namespace keyline::kms {
namespace {

std::string BatchRecord(const std::string& batch_id, const std::string& oem, const std::string& product,
                        wire::BatchState state, uint64_t key_sets, uint64_t imported,
                        const std::string& staged, uint64_t first_order, int64_t started, int64_t finished) {
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(wire::CreateKmsBatch(fbb, fbb.CreateString(batch_id), fbb.CreateString(oem),
                                  fbb.CreateString(product), state, key_sets, imported,
                                  fbb.CreateString(staged), first_order, started, finished));
  return std::string(FinishedText(fbb));
}

// Writes submitted and not yet done; the first failure is kept.
class InFlight {
 public:
  void Add() {
    std::lock_guard lock(mu_);
    ++count_;
  }
  void Done(const Status& status) {
    std::lock_guard lock(mu_);
    --count_;
    if (!status.ok() && first_error_.ok()) first_error_ = status;
    cv_.notify_all();
  }
  // Waits until fewer than `limit` are in flight; the first failure, if any.
  Status WaitBelow(int limit) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return count_ < limit; });
    return first_error_;
  }
  ~InFlight() { (void)WaitBelow(1); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
  Status first_error_;
};

}  // namespace

Status KeySetStore::Load() {
  ASSIGN_OR_RETURN(auto next, context_->Get(layout::kMeta, "next_import_order"));
  if (next) next_import_order_ = layout::ReadU64(*next);
  std::error_code ec;
  std::filesystem::create_directories(staging_dir_, ec);
  if (ec) return UnavailableError(staging_dir_.string() + ": " + ec.message());
  return Status::Ok();
}

Status KeySetStore::ResumeUnfinished() {
  std::vector<std::pair<std::string, std::string>> unfinished;  // batch id, staged file
  {
    std::unique_ptr<rocksdb::Iterator> it(context_->database->db()->NewIterator(
        rocksdb::ReadOptions(), context_->Family(layout::kBatches)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string copy = it->value().ToString();  // aligned for FlatBuffers; blocks are not
      std::span<const uint8_t> value = AsBytes(copy);
      ASSIGN_OR_RETURN(const wire::KmsBatch* batch, schemas::DecodeVerified<wire::KmsBatch>(value, "batch record"));
      if (batch->state() == wire::BatchState::IMPORTING) {
        unfinished.emplace_back(std::string(schemas::Text(batch->batch_id())),
                                std::string(schemas::Text(batch->staged_file())));
      }
    }
  }
  for (const auto& [batch_id, staged] : unfinished) {
    spdlog::info("kms: resuming the import of batch {} interrupted by a restart", batch_id);
    auto result = ImportStaged(staged, "kms", {});
    if (!result.ok()) {
      return result.status().WithContext("resuming the import of batch " + batch_id);
    }
  }
  return Status::Ok();
}

StatusOr<ImportResult> KeySetStore::Import(const std::filesystem::path& path, const std::string& actor,
                                           const ImportProgressFn& progress) {
  // Check before staging: a refused file leaves nothing behind.
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileBytes(path, kMaxBatchFileBytes));
  ASSIGN_OR_RETURN(BatchFileView view, ParseBatchFile(bytes));
  std::filesystem::path staged = StagedPath(view.batch_id);
  std::error_code ec;
  if (!std::filesystem::equivalent(path, staged, ec)) {
    std::filesystem::path temp = staged;
    temp += ".tmp";
    std::filesystem::copy_file(path, temp, std::filesystem::copy_options::overwrite_existing, ec);
    if (!ec) std::filesystem::rename(temp, staged, ec);
    if (ec) return UnavailableError("staging " + path.string() + ": " + ec.message());
  }
  auto result = ImportStaged(staged, actor, progress);
  if (!result.ok() || result->already_imported) {
    // Keep the staged file only while its batch is IMPORTING.
    ASSIGN_OR_RETURN(auto record, context_->Get(layout::kBatches, view.batch_id));
    if (!record || result.ok()) std::filesystem::remove(staged, ec);
  }
  return result;
}

StatusOr<ImportResult> KeySetStore::ImportStaged(const std::filesystem::path& staged,
                                                 const std::string& actor,
                                                 const ImportProgressFn& progress) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileBytes(staged, kMaxBatchFileBytes));
  ASSIGN_OR_RETURN(BatchFileView view, ParseBatchFile(bytes));
  ImportResult result;
  result.batch_id = view.batch_id;
  result.oem = view.oem;
  result.product = view.product;
  result.key_sets = view.key_set_count;

  std::optional<OemSpec> oem = catalog_->Oem(view.oem);
  if (!oem) return NotFoundError("batch " + view.batch_id + ": OEM " + view.oem + " is not registered");
  if (Status s = hsm::VerifySignature(oem->signing_key, view.signed_bytes, view.signature); !s.ok()) {
    return UnauthenticatedError("batch " + view.batch_id + ": the signature does not verify with OEM " +
                                view.oem + "'s registered key (file changed, or signed by another key)");
  }
  std::optional<ProductSpec> product = catalog_->Product(view.product);
  if (!product) return NotFoundError("batch " + view.batch_id + ": product " + view.product + " is not registered");
  if (product->oem != view.oem) {
    return PermissionDeniedError("batch " + view.batch_id + ": product " + view.product +
                                 " belongs to OEM " + product->oem + ", not " + view.oem);
  }
  std::vector<uint8_t> product_slots;
  for (const SlotSpec& s : product->slots) product_slots.push_back(s.slot);
  if (product_slots != view.slots) {
    return InvalidArgumentError("batch " + view.batch_id + ": its slots do not match product " +
                                view.product + "'s slot layout (same slots, same order)");
  }
  auto import_key = schemas::Bytes(view.body->kms_import_key());
  if (import_key.size() != 32 ||
      !std::equal(import_key.begin(), import_key.end(), context_->import_public.bytes.begin())) {
    return FailedPreconditionError("batch " + view.batch_id +
                                   ": sealed for another KMS import key (keyline-kms keys shows ours)");
  }

  // Where did an earlier attempt get to?
  ASSIGN_OR_RETURN(auto existing, context_->Get(layout::kBatches, view.batch_id));
  uint64_t done = 0;
  uint64_t first_order = 0;
  int64_t started = NowUs();
  if (existing) {
    ASSIGN_OR_RETURN(const wire::KmsBatch* batch,
                     schemas::DecodeVerified<wire::KmsBatch>(AsBytes(*existing), "batch record"));
    if (batch->state() == wire::BatchState::IMPORTED) {
      result.already_imported = true;
      return result;
    }
    if (batch->key_sets() != view.key_set_count) {
      return DataLossError("batch " + view.batch_id + ": the kept file does not match the batch record");
    }
    done = batch->imported();
    first_order = batch->first_import_order();
    started = batch->started_at_us();
  } else {
    first_order = next_import_order_;
    next_import_order_ += view.key_set_count;
    RETURN_IF_ERROR(context_->store->Commit([&](broker::WriteContext& write) -> Status {
      write.batch().Put(context_->Family(layout::kBatches), view.batch_id,
                        BatchRecord(view.batch_id, view.oem, view.product, wire::BatchState::IMPORTING,
                                    view.key_set_count, 0, staged.string(), first_order, started, 0));
      write.batch().Put(context_->Family(layout::kMeta), "next_import_order",
                        layout::U64(next_import_order_));
      return Status::Ok();
    }));
  }

  InFlight in_flight;  // chunk writes submitted and not yet done
  // Takes back what this batch stored: a chunk that cannot be opened fails the whole file.
  auto take_back = [&](uint64_t stored, const Status& why) -> Status {
    (void)in_flight.WaitBelow(1);
    Status undo = context_->store->Commit([&](broker::WriteContext& write) -> Status {
      for (uint64_t i = 0; i < stored; ++i) {
        write.batch().Delete(context_->Family(layout::kKeySets), view.batch_id + "." + std::to_string(i));
      }
      write.batch().Delete(context_->Family(layout::kBatches), view.batch_id);
      return Status::Ok();
    });
    if (!undo.ok()) spdlog::error("kms: taking back batch {}: {}", view.batch_id, undo.ToString());
    return why;
  };

  const wire::OemBatchBody* body = view.body;
  const size_t slots = view.slots.size();
  using Clock = std::chrono::steady_clock;
  Clock::duration unwrap_time{}, wrap_time{}, store_time{};
  uint64_t index = 0;
  flatbuffers::FlatBufferBuilder fbb(1024);
  std::vector<std::string> records;
  std::vector<std::string> contexts;  // of each key's storage wrap, in handle order
  for (size_t c = 0; c < view.chunk_sizes.size(); ++c) {
    const uint64_t sets = view.chunk_sizes[c];
    if (index + sets <= done) {
      index += sets;
      continue;  // stored before a restart
    }
    const wire::OemBatchChunk* chunk = body->chunks()->Get(static_cast<flatbuffers::uoffset_t>(c));
    std::span<const uint8_t> wrapped = schemas::Bytes(chunk->wrapped());
    auto t0 = Clock::now();
    auto opened = context_->custody->UnwrapFromPeer(
        context_->import_key, hsm::WrappedKeySet{{wrapped.begin(), wrapped.end()}},
        ChunkContext(view.batch_id, c));
    if (!opened.ok()) {
      return take_back(index, DataLossError("batch " + view.batch_id + ": chunk " + std::to_string(c) +
                                            " cannot be opened with the KMS import key (" +
                                            opened.status().message() + "); nothing imported"));
    }
    std::vector<hsm::KeyHandle>& handles = *opened;
    auto destroy_all = [&] {
      for (const hsm::KeyHandle& h : handles) (void)context_->custody->DestroyKey(h);
    };
    if (handles.size() != sets * slots) {
      destroy_all();
      return take_back(index, DataLossError("batch " + view.batch_id + ": chunk " + std::to_string(c) +
                                            " holds " + std::to_string(handles.size()) + " keys, expected " +
                                            std::to_string(sets * slots) + "; nothing imported"));
    }
    auto t1 = Clock::now();
    unwrap_time += t1 - t0;
    records.clear();
    records.reserve(sets);
    contexts.clear();
    for (uint64_t s = 0; s < sets; ++s) {
      for (size_t k = 0; k < slots; ++k) {
        contexts.push_back("keyset/" + view.batch_id + "." + std::to_string(index + s) + "/slot/" +
                           std::to_string(view.slots[k]));
      }
    }
    auto stored = context_->custody->WrapManyForStorage(handles, contexts);
    Status wrap_status = stored.status();
    for (uint64_t s = 0; s < sets && wrap_status.ok(); ++s) {
      fbb.Clear();
      std::vector<flatbuffers::Offset<wire::StoredSlotKey>> keys;
      for (size_t k = 0; k < slots; ++k) {
        keys.push_back(wire::CreateStoredSlotKey(fbb, view.slots[k], fbb.CreateVector((*stored)[s * slots + k].bytes)));
      }
      fbb.Finish(wire::CreateKmsKeySet(fbb, fbb.CreateString(view.batch_id + "." + std::to_string(index + s)),
                                       fbb.CreateString(view.oem), fbb.CreateString(view.product),
                                       fbb.CreateString(view.batch_id), first_order + index + s,
                                       wire::KeySetState::IMPORTED, fbb.CreateVector(keys)));
      records.emplace_back(FinishedText(fbb));
    }
    destroy_all();
    auto t2 = Clock::now();
    wrap_time += t2 - t1;
    if (!wrap_status.ok()) return take_back(index, wrap_status);
    const uint64_t through = index + sets;
    // Stored while the next chunk is being re-wrapped: at most two chunk writes in flight.
    RETURN_IF_ERROR(in_flight.WaitBelow(2));
    auto chunk_records = std::make_shared<std::vector<std::string>>(std::move(records));
    records = {};
    const uint64_t first = index;
    in_flight.Add();
    context_->store->Submit(
        [this, chunk_records, first, through, &view, &staged, first_order, started](broker::WriteContext& write) -> Status {
          for (uint64_t s = 0; s < chunk_records->size(); ++s) {
            write.batch().Put(context_->Family(layout::kKeySets),
                              view.batch_id + "." + std::to_string(first + s), (*chunk_records)[s]);
          }
          write.batch().Put(context_->Family(layout::kBatches), view.batch_id,
                            BatchRecord(view.batch_id, view.oem, view.product, wire::BatchState::IMPORTING,
                                        view.key_set_count, through, staged.string(), first_order, started, 0));
          return Status::Ok();
        },
        [&in_flight](const Status& status) { in_flight.Done(status); }, broker::Durability::kRelaxed);
    store_time += Clock::now() - t2;
    result.added += sets;
    index = through;
    if (progress) progress(index, view.key_set_count);
  }

  // Every chunk is stored (a failed chunk write leaves the batch IMPORTING: a restart resumes it).
  RETURN_IF_ERROR(in_flight.WaitBelow(1));
  // One synced write makes the batch stock, with its audit entry.
  auto final_start = Clock::now();
  RETURN_IF_ERROR(context_->store->Commit([&](broker::WriteContext& write) -> Status {
    auto* stock = context_->Family(layout::kStock);
    for (uint64_t i = 0; i < view.key_set_count; ++i) {
      write.batch().Put(stock, layout::StockKey(view.product, first_order + i),
                        view.batch_id + "." + std::to_string(i));
    }
    write.batch().Put(context_->Family(layout::kBatches), view.batch_id,
                      BatchRecord(view.batch_id, view.oem, view.product, wire::BatchState::IMPORTED,
                                  view.key_set_count, view.key_set_count, "", first_order, started, NowUs()));
    write.batch().Delete(context_->Family(layout::kMeta), "alert/" + view.product);
    audit_->Append(write, actor, "keysets.imported", view.batch_id,
                   "{\"oem\":\"" + view.oem + "\",\"product\":\"" + view.product +
                       "\",\"key_sets\":" + std::to_string(view.key_set_count) + ",\"first\":\"" +
                       view.batch_id + ".0\",\"last\":\"" + view.batch_id + "." +
                       std::to_string(view.key_set_count - 1) + "\"}");
    return Status::Ok();
  }));
  std::error_code ec;
  std::filesystem::remove(staged, ec);
  auto ms = [](Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  spdlog::info("kms: imported batch {}: {} key sets of {} for {} (open {} ms, re-wrap {} ms, store {} ms, "
               "make stock {} ms)",
               view.batch_id, view.key_set_count, view.product, view.oem, ms(unwrap_time), ms(wrap_time),
               ms(store_time), ms(Clock::now() - final_start));
  return result;
}

}  // namespace keyline::kms

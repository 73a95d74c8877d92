#include "audit_log.h"

#include <memory>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <sodium.h>

#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/kms_store_generated.h"
#include "store_layout.h"

namespace keyline::kms {
namespace {

using Hash = std::array<uint8_t, 32>;

void HashText(crypto_generichash_state& state, std::string_view text) {
  std::string length = layout::U64(text.size());
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(length.data()), 8);
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

Hash EntryHash(const Hash& prev, uint64_t sequence, int64_t at_us, std::string_view actor,
               std::string_view action, std::string_view subject, std::string_view detail) {
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, 32);
  static constexpr char kDomain[] = "keyline audit v1";
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(kDomain), sizeof kDomain - 1);
  crypto_generichash_update(&state, prev.data(), prev.size());
  std::string numbers = layout::U64(sequence) + layout::U64(static_cast<uint64_t>(at_us));
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(numbers.data()), 16);
  HashText(state, actor);
  HashText(state, action);
  HashText(state, subject);
  HashText(state, detail);
  Hash out{};
  crypto_generichash_final(&state, out.data(), out.size());
  return out;
}

}  // namespace

Status AuditLog::Load() {
  if (sodium_init() < 0) return InternalError("libsodium failed to initialise");
  ASSIGN_OR_RETURN(auto head, context_->Get(layout::kMeta, "audit_head"));
  if (head && head->size() == 40) {
    head_sequence_ = layout::ReadU64(*head);
    std::copy_n(head->data() + 8, 32, head_hash_.begin());
  }
  failed_writes_.Arm(*context_);
  return Status::Ok();
}

void AuditLog::ReloadAfterFailedWrite() {
  // A group write failed: entries appended in it never reached the disk. Continue from the
  // durable head so the chain has no hole.
  if (!failed_writes_.FailedSinceLastLook(*context_)) return;
  head_sequence_ = 0;
  head_hash_ = {};
  (void)Load();
}

void AuditLog::Append(broker::WriteContext& write, std::string_view actor, std::string_view action,
                      std::string_view subject, std::string_view detail_json) {
  ReloadAfterFailedWrite();
  const uint64_t sequence = head_sequence_ + 1;
  const int64_t at = NowUs();
  Hash hash = EntryHash(head_hash_, sequence, at, actor, action, subject, detail_json);
  flatbuffers::FlatBufferBuilder fbb(256 + detail_json.size());
  auto entry = wire::CreateAuditEntry(
      fbb, sequence, at, fbb.CreateString(actor), fbb.CreateString(action),
      fbb.CreateString(subject), fbb.CreateString(detail_json),
      fbb.CreateVector(head_hash_.data(), head_hash_.size()), fbb.CreateVector(hash.data(), hash.size()));
  fbb.Finish(entry);
  write.batch().Put(context_->Family(layout::kAudit), layout::AuditKey(sequence),
                    rocksdb::Slice(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()));
  std::string head = layout::U64(sequence);
  head.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  write.batch().Put(context_->Family(layout::kMeta), "audit_head", head);
  head_sequence_ = sequence;
  head_hash_ = hash;
}

StatusOr<AuditReport> AuditLog::Verify() const {
  AuditReport report;
  auto problem = [&](std::string text) {
    report.intact = false;
    if (report.problems.size() < 20) report.problems.push_back(std::move(text));
  };
  Hash prev{};
  uint64_t expected = 1;
  std::unique_ptr<rocksdb::Iterator> it(
      context_->database->db()->NewIterator(rocksdb::ReadOptions(), context_->Family(layout::kAudit)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ++report.entries;
    std::string_view key(it->key().data(), it->key().size());
    const std::string copy = it->value().ToString();  // aligned for FlatBuffers; blocks are not
    std::span<const uint8_t> value = AsBytes(copy);
    uint64_t key_sequence = key.size() == 9 ? layout::ReadU64(key.substr(1)) : 0;
    auto decoded = schemas::DecodeVerified<wire::AuditEntry>(value, "audit entry");
    if (!decoded.ok()) {
      problem("entry " + std::to_string(key_sequence) + ": unreadable (" +
              decoded.status().message() + ")");
      prev = {};
      expected = key_sequence + 1;
      continue;
    }
    const wire::AuditEntry* entry = *decoded;
    if (entry->sequence() != key_sequence) {
      problem("entry stored at " + std::to_string(key_sequence) + " says it is entry " +
              std::to_string(entry->sequence()) + " (moved or reordered)");
    }
    if (key_sequence != expected) {
      problem("entries " + std::to_string(expected) + ".." + std::to_string(key_sequence - 1) +
              " are missing (removed)");
    }
    std::span<const uint8_t> stored_prev = schemas::Bytes(entry->prev_hash());
    std::span<const uint8_t> stored_hash = schemas::Bytes(entry->hash());
    if (stored_prev.size() != 32 || !std::equal(prev.begin(), prev.end(), stored_prev.begin())) {
      problem("entry " + std::to_string(key_sequence) +
              ": does not follow the entry before it (an entry was removed, reordered or changed)");
    }
    Hash recomputed = EntryHash(
        stored_prev.size() == 32 ? [&] { Hash h{}; std::copy_n(stored_prev.begin(), 32, h.begin()); return h; }()
                                 : Hash{},
        entry->sequence(), entry->at_us(), schemas::Text(entry->actor()),
        schemas::Text(entry->action()), schemas::Text(entry->subject()),
        schemas::Text(entry->detail()));
    if (stored_hash.size() != 32 || !std::equal(recomputed.begin(), recomputed.end(), stored_hash.begin())) {
      problem("entry " + std::to_string(key_sequence) + ": hash does not match its content (changed)");
    }
    prev = recomputed;
    expected = key_sequence + 1;
  }
  if (!it->status().ok()) return UnavailableError("reading the audit log: " + it->status().ToString());
  ASSIGN_OR_RETURN(auto head, context_->Get(layout::kMeta, "audit_head"));
  const uint64_t head_sequence = head && head->size() == 40 ? layout::ReadU64(*head) : 0;
  if (head_sequence + 1 != expected) {
    problem("the log ends at entry " + std::to_string(expected - 1) + " but its head says " +
            std::to_string(head_sequence) + " (newest entries removed?)");
  } else if (head && !std::equal(prev.begin(), prev.end(),
                                 reinterpret_cast<const uint8_t*>(head->data() + 8))) {
    problem("the newest entry does not match the recorded head hash");
  }
  return report;
}

}  // namespace keyline::kms

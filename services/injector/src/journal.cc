#include "journal.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <chrono>

#include "keyline/broker/database.h"
#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/injector_store_generated.h"

namespace keyline::injector {
namespace {

// "<product>/<uid hex>": one entry per ECU and product, as the PKS reserves per the same pair.
std::string Key(const std::string& product, const EcuUid& uid) {
  return product + "/" + ToHex(uid);
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

StatusOr<JournalEntry> Decode(std::span<const uint8_t> bytes, const std::string& key) {
  ASSIGN_OR_RETURN(const wire::StoredProvisioning* stored,
                   schemas::DecodeVerified<wire::StoredProvisioning>(bytes, "journal/" + key));
  JournalEntry entry;
  switch (stored->state()) {
    case wire::ProvisioningState::PACKAGE: entry.reported = false; break;
    case wire::ProvisioningState::REPORTED: entry.reported = true; break;
    default:
      return DataLossError("journal/" + key + ": unknown state " +
                           std::to_string(static_cast<int>(stored->state())));
  }
  auto package = schemas::Bytes(stored->package());
  entry.package.assign(package.begin(), package.end());
  entry.attempts = stored->attempts();
  auto reply = schemas::Bytes(stored->reply());
  entry.reply.assign(reply.begin(), reply.end());
  entry.result_sequence = stored->result_sequence();
  return entry;
}

}  // namespace

StatusOr<std::optional<JournalEntry>> Journal::Get(const std::string& product,
                                                   const EcuUid& uid) const {
  std::string key = Key(product, uid);
  std::string value;
  rocksdb::Status s = database_->db()->Get(rocksdb::ReadOptions(),
                                           database_->Family(kJournalFamily), key, &value);
  if (s.IsNotFound()) return std::optional<JournalEntry>();
  if (!s.ok()) return InternalError("journal read of " + key + " failed: " + s.ToString());
  ASSIGN_OR_RETURN(JournalEntry entry,
                   Decode({reinterpret_cast<const uint8_t*>(value.data()), value.size()}, key));
  return std::optional<JournalEntry>(std::move(entry));
}

void Journal::Put(rocksdb::WriteBatch& batch, const std::string& product, const EcuUid& uid,
                  const JournalEntry& entry) const {
  flatbuffers::FlatBufferBuilder fbb(512 + entry.package.size() + entry.reply.size());
  fbb.Finish(wire::CreateStoredProvisioning(
      fbb, entry.reported ? wire::ProvisioningState::REPORTED : wire::ProvisioningState::PACKAGE,
      fbb.CreateString(product), schemas::CreateBytes(fbb, uid),
      schemas::CreateBytes(fbb, entry.package), entry.attempts,
      schemas::CreateBytes(fbb, entry.reply), entry.result_sequence, NowUs()));
  std::span<const uint8_t> bytes = schemas::FinishedBytes(fbb);
  rocksdb::Status s = batch.Put(
      database_->Family(kJournalFamily), Key(product, uid),
      rocksdb::Slice(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  // WriteBatch::Put only fails beyond 4 GiB, which no journal entry approaches.
  if (!s.ok()) spdlog::critical("WriteBatch refused a journal put: {}", s.ToString());
}

StatusOr<JournalCounts> Journal::Count() const {
  JournalCounts counts;
  std::unique_ptr<rocksdb::Iterator> it(
      database_->db()->NewIterator(rocksdb::ReadOptions(), database_->Family(kJournalFamily)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string key = it->key().ToString();
    // Copied: a FlatBuffer must be aligned, a value inside a RocksDB block is not.
    std::string value = it->value().ToString();
    ASSIGN_OR_RETURN(JournalEntry entry,
                     Decode({reinterpret_cast<const uint8_t*>(value.data()), value.size()}, key));
    if (!entry.reported) {
      ++counts.pending;
      continue;
    }
    // The outcome is the reply's first field; decoding it whole keeps one way to read it.
    auto reply = schemas::DecodeVerified<wire::EolReply>(entry.reply, "journal/" + key + " reply");
    if (reply.ok() && schemas::Text((*reply)->outcome()) == "PROVISIONED") {
      ++counts.provisioned;
    } else {
      ++counts.failed;
    }
  }
  if (!it->status().ok()) return InternalError("journal scan failed: " + it->status().ToString());
  return counts;
}

}  // namespace keyline::injector

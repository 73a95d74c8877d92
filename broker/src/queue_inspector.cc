#include "keyline/broker/queue_inspector.h"

#include <cstdlib>

#include <rocksdb/db.h>

#include "keyline/broker/database.h"
#include "keyline/common/hex.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/json.h"
#include "keyline/wire/link_generated.h"
#include "keys.h"
#include "rocksdb_status.h"

namespace keyline::broker {
namespace {

std::filesystem::path ResolveDbDir(const std::filesystem::path& data_dir) {
  std::error_code ec;
  if (std::filesystem::exists(data_dir / "db" / "CURRENT", ec)) return data_dir / "db";
  return data_dir;
}

}  // namespace

StatusOr<std::unique_ptr<QueueInspector>> QueueInspector::Open(
    const std::filesystem::path& data_dir) {
  std::filesystem::path db_dir = ResolveDbDir(data_dir);
  std::error_code ec;
  if (!std::filesystem::exists(db_dir / "CURRENT", ec)) {
    return NotFoundError(data_dir.string() +
                         " holds no Keyline data (no RocksDB database there or in db/)");
  }
  std::unique_ptr<QueueInspector> inspector(new QueueInspector());
  ASSIGN_OR_RETURN(inspector->database_, Database::Open({.path = db_dir, .secondary = true}));
  if (!inspector->database_->HasFamily(kBrokerColumnFamily)) {
    return NotFoundError(db_dir.string() + " has no broker queues (no 'broker' column family)");
  }
  RETURN_IF_ERROR(inspector->database_->CatchUp());
  return inspector;
}

QueueInspector::~QueueInspector() = default;

PeerLinkView QueueInspector::LinkOf(const std::string& peer) const {
  PeerLinkView view;
  std::string value;
  rocksdb::Status s = database_->db()->Get(rocksdb::ReadOptions(), database_->broker_family(),
                                           keys::LinkStateKey(peer), &value);
  if (!s.ok()) return view;
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(value.data()), value.size());
  auto state = schemas::DecodeVerified<wire::LinkState>(bytes, "LinkState");
  if (!state.ok()) {
    view.last_error = "(link state unreadable: " + state.status().message() + ")";
    return view;
  }
  view.last_contact_us = (*state)->last_contact_us();
  view.last_error = (*state)->last_error() != nullptr ? (*state)->last_error()->str() : "";
  view.last_error_us = (*state)->last_error_us();
  return view;
}

StatusOr<std::vector<OutboundQueueView>> QueueInspector::Outbound() const {
  std::vector<OutboundQueueView> out;
  rocksdb::DB* db = database_->db();
  std::unique_ptr<rocksdb::Iterator> it(
      db->NewIterator(rocksdb::ReadOptions(), database_->broker_family()));
  std::string acked_prefix(1, keys::kAcked);
  for (it->Seek(acked_prefix); it->Valid() && it->key().starts_with(acked_prefix); it->Next()) {
    auto parsed = keys::Parse(it->key().ToStringView());
    if (!parsed) return DataLossError("malformed queue key in " + database_->path().string());
    OutboundQueueView view;
    view.queue = parsed->queue;
    view.acked_through = keys::ReadBigEndian(it->value().ToStringView());
    view.last_sequence = view.acked_through;
    out.push_back(std::move(view));
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "listing queues"));

  for (auto& view : out) {
    std::string end = keys::QueuePrefix(keys::kMessage, view.queue);
    end.back() = '\1';
    rocksdb::Slice upper(end);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> messages(
        db->NewIterator(read_options, database_->broker_family()));
    for (messages->Seek(keys::MessageKey(view.queue, view.acked_through + 1)); messages->Valid();
         messages->Next()) {
      auto key = messages->key().ToStringView();
      uint64_t sequence = keys::ReadBigEndian(key.substr(key.size() - 8));
      if (view.depth == 0) {
        // Copied: FlatBuffers reads need the alignment that a heap buffer has and a block does not.
        std::string value = messages->value().ToString();
        std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(value.data()), value.size());
        auto envelope = schemas::DecodeEnvelope(bytes);
        if (envelope.ok()) view.oldest_created_us = envelope->envelope->created_at_us();
      }
      ++view.depth;
      view.bytes += messages->value().size();
      view.last_sequence = std::max(view.last_sequence, sequence);
    }
    RETURN_IF_ERROR(FromRocks(messages->status(), "reading queue " + view.queue.ToString()));
    view.link = LinkOf(view.queue.peer);
  }
  return out;
}

StatusOr<std::vector<InboundStreamView>> QueueInspector::Inbound() const {
  std::vector<InboundStreamView> out;
  std::unique_ptr<rocksdb::Iterator> it(
      database_->db()->NewIterator(rocksdb::ReadOptions(), database_->broker_family()));
  std::string prefix(1, keys::kApplied);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto parsed = keys::Parse(it->key().ToStringView());
    if (!parsed) return DataLossError("malformed inbox key in " + database_->path().string());
    out.push_back({parsed->queue, keys::ReadBigEndian(it->value().ToStringView()), {}});
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "listing inbound streams"));
  for (auto& view : out) view.link = LinkOf(view.from.peer);
  return out;
}

StatusOr<std::vector<MessageView>> QueueInspector::Peek(const QueueId& queue,
                                                        size_t max_count) const {
  std::vector<MessageView> out;
  std::string end = keys::QueuePrefix(keys::kMessage, queue);
  end.back() = '\1';
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(
      database_->db()->NewIterator(read_options, database_->broker_family()));
  for (it->Seek(keys::QueuePrefix(keys::kMessage, queue)); it->Valid() && out.size() < max_count;
       it->Next()) {
    auto key = it->key().ToStringView();
    MessageView view;
    view.sequence = keys::ReadBigEndian(key.substr(key.size() - 8));
    std::string value = it->value().ToString();  // aligned copy, as above
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(value.data()), value.size());
    auto envelope = schemas::DecodeEnvelope(bytes);
    if (!envelope.ok()) {
      view.problem = envelope.status().message();
      out.push_back(std::move(view));
      continue;
    }
    const wire::Envelope* e = envelope->envelope;
    view.verified = true;
    view.stream = e->stream() != nullptr ? e->stream()->str() : "";
    view.type = schemas::MessageTypeName(envelope->type);
    view.sender = e->sender() != nullptr ? e->sender()->str() : "";
    view.message_id = ToHex(envelope->message_id);
    view.created_us = e->created_at_us();
    view.payload_bytes = envelope->payload.size();
    view.payload_json = schemas::PayloadToJson(envelope->type, envelope->payload);
    out.push_back(std::move(view));
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "reading queue " + queue.ToString()));
  return out;
}

}  // namespace keyline::broker

// Read-only view of a live service's queues, for keyline-queue and status pages.
// Opens the data dir as a RocksDB secondary instance: the service keeps running and writing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "keyline/broker/queue_id.h"
#include "keyline/common/status.h"

namespace keyline::broker {

class Database;

// What the link last knew of a peer.
struct PeerLinkView {
  int64_t last_contact_us = 0;  // 0: never heard from
  std::string last_error;       // empty: none
  int64_t last_error_us = 0;
};

struct OutboundQueueView {
  QueueId queue;
  uint64_t depth = 0;             // messages waiting for the peer's acknowledgement
  uint64_t bytes = 0;             // their stored size
  uint64_t acked_through = 0;     // the peer has applied everything up to here
  uint64_t last_sequence = 0;     // highest sequence queued
  int64_t oldest_created_us = 0;  // creation time of the oldest waiting message; 0 when empty
  PeerLinkView link;              // of queue.peer
};

struct InboundStreamView {
  QueueId from;                 // peer and stream this service receives
  uint64_t applied_through = 0;
  PeerLinkView link;            // of from.peer
};

struct MessageView {
  uint64_t sequence = 0;
  std::string stream;
  std::string type;          // MessageType name ("InjectionRecord"), or "unknown(<n>)"
  std::string sender;
  std::string message_id;    // hex
  int64_t created_us = 0;
  size_t payload_bytes = 0;
  std::string payload_json;  // the payload's fields (schemas::PayloadToJson: sealed keys by size)
  bool verified = false;     // the envelope and its payload passed the FlatBuffers Verifier
  std::string problem;       // why not, when !verified
};

class QueueInspector {
 public:
  // `data_dir` is the service's RocksDB directory (or a directory holding it as "db").
  static StatusOr<std::unique_ptr<QueueInspector>> Open(const std::filesystem::path& data_dir);
  ~QueueInspector();

  StatusOr<std::vector<OutboundQueueView>> Outbound() const;
  StatusOr<std::vector<InboundStreamView>> Inbound() const;
  // The first `max_count` waiting messages of `queue`, decoded (wrapped key material is shown
  // by size only; no message carries a key in clear).
  StatusOr<std::vector<MessageView>> Peek(const QueueId& queue, size_t max_count) const;

 private:
  QueueInspector() = default;
  PeerLinkView LinkOf(const std::string& peer) const;
  std::unique_ptr<Database> database_;
};

}  // namespace keyline::broker

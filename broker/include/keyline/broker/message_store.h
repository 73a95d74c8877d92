// The durable half of the broker for one service: its outbound queues (outbox), how far it
// has applied each inbound stream (inbox), and the one writer that commits both together
// with the service's own state changes (group commit).
//
// Transactional outbox: a service changes its state and queues the messages that change
// causes inside ONE Work function; both land in one synced RocksDB write, or neither does.
//
//   store->Commit([&](WriteContext& write) -> Status {
//     write.batch().Put(reservations, key, value);                 // state change
//     ASSIGN_OR_RETURN(uint64_t seq, write.Send({"kms", "records"}, wire::MessageType::InjectionRecord, bytes));
//     write.MarkApplied({"station-a1", "results"}, incoming_sequence);
//     return Status::Ok();
//   });
//
// Many Work items from many threads share one synced write (group commit); each caller learns
// the outcome only once its write is durable. Sequences per queue start at 1 and have no gaps.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keyline/broker/queue_id.h"
#include "keyline/common/status.h"

namespace rocksdb {
class WriteBatch;
}  // namespace rocksdb

namespace keyline::wire {
enum class MessageType : uint16_t;
}  // namespace keyline::wire

namespace keyline::broker {

class Database;

// Handed to a Work function; valid only during that call, on the thread writing the group.
class WriteContext {
 public:
  virtual ~WriteContext() = default;
  // The group's batch: put the service's own state changes here.
  virtual rocksdb::WriteBatch& batch() = 0;
  // Queues a message to `to`, wrapped in an Envelope with the next sequence of that queue.
  // It is durable, and handed to the link, only when this write commits.
  virtual StatusOr<uint64_t> Send(const QueueId& to, wire::MessageType type,
                                  std::span<const uint8_t> payload) = 0;
  // Highest sequence of `from` applied so far, counting earlier items of this same write.
  virtual uint64_t AppliedThrough(const QueueId& from) const = 0;
  // Records that `sequence` of `from` is applied, in the same write as its effects.
  virtual void MarkApplied(const QueueId& from, uint64_t sequence) = 0;

  // Nested save points inside one Work: RollbackToSavePoint takes back everything since the
  // matching SetSavePoint (batch puts, sends, applied marks); PopSavePoint keeps it.
  virtual void SetSavePoint() = 0;
  virtual void RollbackToSavePoint() = 0;
  virtual void PopSavePoint() = 0;

  // Keeps a message refused for good (links use it), so that a person can see it with
  // keyline-queue; `reason` says why. Key material is never in an envelope in clear.
  virtual void RecordDeadLetter(const QueueId& from, uint64_t sequence, std::string_view reason,
                                std::span<const uint8_t> envelope) = 0;
};

// A unit of work. Returning an error rolls back everything it put in the write (batch puts,
// sends, applied marks); other items of the same group are unaffected.
using Work = std::function<Status(WriteContext&)>;
// Called once with the outcome: OK means durable (or, for kRelaxed, written).
using Done = std::function<void(const Status&)>;

enum class Durability {
  kSync,     // fsync before Done: for anything a peer or a person relies on
  kRelaxed,  // written without waiting for fsync: for bookkeeping whose loss is harmless
};

struct MessageStoreOptions {
  // This service's name, written as the sender of every envelope. Required.
  std::string self;
  // Most work items in one write. Default 4096.
  size_t max_group_items = 4096;
  // Stop adding items to a group once its batch holds this many bytes. Default 16 MiB.
  size_t max_group_bytes = 16u << 20;
};

// One message as stored in an outbox.
struct StoredMessage {
  uint64_t sequence = 0;
  std::string envelope;  // the Envelope FlatBuffer, as it goes on the wire
};

struct OutboxQueueStats {
  QueueId queue;
  uint64_t last_sequence = 0;   // highest committed sequence
  uint64_t acked_through = 0;   // highest sequence the peer acknowledged
  uint64_t depth() const { return last_sequence - acked_through; }
};

class MessageStore {
 public:
  // Loads the queues' positions from `database` (which must outlive the store) and starts the
  // commit thread.
  static StatusOr<std::unique_ptr<MessageStore>> Open(Database* database,
                                                      MessageStoreOptions options);
  virtual ~MessageStore() = default;

  // Runs `work` in the next group write, then calls `done` on the thread that wrote the group
  // (keep it short). Groups are written one at a time, so Work functions never run at once.
  virtual void Submit(Work work, Done done, Durability durability = Durability::kSync) = 0;
  // Like Submit, but when no group is being written the caller's thread writes one at once,
  // `done` included, before returning: this work with what was queued before it (the part of
  // the queue beyond one group's limits is left to the commit thread). Else the commit thread
  // writes it. Saves two thread switches for a thread that has nothing better to do meanwhile.
  // Never call it, nor Commit, from inside a Work or Done function.
  virtual void SubmitOrWriteNow(Work work, Done done, Durability durability = Durability::kSync) = 0;
  // SubmitOrWriteNow and wait for the outcome.
  [[nodiscard]] virtual Status Commit(Work work, Durability durability = Durability::kSync) = 0;

  // Committed state, readable from any thread.
  virtual uint64_t LastSequence(const QueueId& queue) const = 0;
  virtual uint64_t AckedThrough(const QueueId& queue) const = 0;
  virtual uint64_t AppliedThrough(const QueueId& from) const = 0;
  // Inbound streams from `peer` with their applied positions (what a Hello tells the peer).
  virtual std::vector<std::pair<std::string, uint64_t>> InboundFrom(const std::string& peer) const = 0;
  // Outbound queues towards `peer` that have ever held a message.
  virtual std::vector<QueueId> QueuesTo(const std::string& peer) const = 0;
  virtual std::vector<OutboxQueueStats> OutboxStats() const = 0;
  // Committed messages of `queue` from `from_sequence` on, at most `max_count` of them and
  // about `max_bytes` (at least one message is returned if one exists).
  virtual StatusOr<std::vector<StoredMessage>> Read(const QueueId& queue, uint64_t from_sequence,
                                                    size_t max_count, size_t max_bytes) const = 0;

  // The peer has applied everything through `sequence`: forget those messages. AckedThrough
  // says so at once; the messages are removed with the next write (within about 50 ms), relaxed:
  // losing that in a crash only means a resend that the peer recognises and skips. A commit
  // submitted after this call writes it. Sequences at or below the current position, or
  // beyond the last message, are ignored.
  virtual void Acknowledge(const QueueId& queue, uint64_t sequence) = 0;

  // Called by the group's writer after each durable write that queued new messages, with the
  // queues that grew. Links use it to wake up. Register before traffic starts.
  // Listeners run with a lock held: keep them short (wake a thread, set a flag).
  using CommitListener = std::function<void(const std::vector<QueueId>& grown)>;
  virtual uint64_t AddCommitListener(CommitListener listener) = 0;
  // After this returns the listener is not running and will not run again.
  virtual void RemoveCommitListener(uint64_t id) = 0;

  // Called when the peer acknowledges `queue` through `through` (on the thread that called
  // Acknowledge, the link's): a sender waiting for its message to be applied learns it without
  // polling. Same rules as commit listeners: short, and registered before traffic starts.
  using AckListener = std::function<void(const QueueId& queue, uint64_t through)>;
  virtual uint64_t AddAckListener(AckListener listener) = 0;
  virtual void RemoveAckListener(uint64_t id) = 0;

  virtual const std::string& self() const = 0;

  // Link bookkeeping for keyline-queue: when `peer` was last heard from, and its latest
  // problem. Kept in memory and written relaxed; the link throttles how often it calls these.
  virtual void RecordContact(const std::string& peer, int64_t at_us) = 0;
  virtual void RecordLinkError(const std::string& peer, std::string_view error, int64_t at_us) = 0;

  // Counters for status pages and benchmarks.
  struct Counters {
    uint64_t writes = 0;        // RocksDB writes (groups) committed
    uint64_t synced_writes = 0;  // of which fsynced
    uint64_t items = 0;         // work items that succeeded
    uint64_t failed_writes = 0;  // writes RocksDB refused (disk full, I/O error)
  };
  virtual Counters counters() const = 0;
};

}  // namespace keyline::broker

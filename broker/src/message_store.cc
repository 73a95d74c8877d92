#include "keyline/broker/message_store.h"

#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <flatbuffers/flatbuffers.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include "keyline/broker/database.h"
#include "keyline/common/thread_name.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/link_generated.h"
#include "keys.h"
#include "rocksdb_status.h"

namespace keyline::broker {
namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Queues deleted one key at a time up to this many acknowledged messages; beyond it one
// range tombstone is cheaper than thousands of point tombstones.
constexpr uint64_t kPointDeleteLimit = 256;

// How long acknowledged messages may wait for a write they can join before they get one of
// their own. Removing them is relaxed (a crash before it only means a resend the peer skips),
// so an acknowledgement need not cost a write of its own.
constexpr auto kTrimDelay = std::chrono::milliseconds(50);
// A commit thread busy this recently looks for acknowledgements by itself every kTrimDelay
// rather than being woken for each: on a busy link nearly every acknowledgement would wake
// it, only to find that a caller's commit had taken it along. An idle one sleeps until woken.
constexpr auto kStayAwake = std::chrono::seconds(1);

// A group write's buffer is reused if the group was at most this big. 8 MiB.
constexpr size_t kKeptBatchBytes = 8u << 20;

class MessageStoreImpl;

// The overlay of one group: positions changed by items not yet committed, with an undo log
// so a failing item can be taken back without touching the others.
class GroupWriteContext final : public WriteContext {
 public:
  GroupWriteContext(MessageStoreImpl& store, rocksdb::WriteBatch& batch)
      : store_(store), batch_(batch) {}

  rocksdb::WriteBatch& batch() override { return batch_; }
  StatusOr<uint64_t> Send(const QueueId& to, wire::MessageType type,
                          std::span<const uint8_t> payload) override;
  uint64_t AppliedThrough(const QueueId& from) const override;
  void MarkApplied(const QueueId& from, uint64_t sequence) override;

  void SetSavePoint() override {
    batch_.SetSavePoint();
    save_points_.push_back(undo_.size());
  }
  void RollbackToSavePoint() override {
    if (save_points_.empty()) return;
    (void)batch_.RollbackToSavePoint();
    UndoTo(save_points_.back());
    save_points_.pop_back();
  }
  void PopSavePoint() override {
    if (save_points_.empty()) return;
    (void)batch_.PopSavePoint();
    save_points_.pop_back();
  }
  void RecordDeadLetter(const QueueId& from, uint64_t sequence, std::string_view reason,
                        std::span<const uint8_t> envelope) override;

  // Puts the applied position of every stream this group advanced; call once, after the items.
  void WriteAppliedPositions();
  // Removes the messages of `queue` after `acked` through `through` (the peer acknowledged
  // them) and moves its written acknowledged position; call after the items.
  void WriteTrim(const QueueId& queue, uint64_t acked, uint64_t through);

  void BeginItem() {
    undo_.clear();
    save_points_.clear();
    batch_.SetSavePoint();
  }
  void EndItem(bool ok);

  std::map<QueueId, uint64_t> last_;     // outbox: last sequence including this group
  std::map<QueueId, uint64_t> applied_;  // inbox
  std::map<QueueId, uint64_t> acked_;    // outbox acknowledgements

 private:
  struct Undo {
    std::map<QueueId, uint64_t>* map;
    QueueId key;
    bool existed;
    uint64_t old_value;
  };
  void Set(std::map<QueueId, uint64_t>& map, const QueueId& key, uint64_t value) {
    auto it = map.find(key);
    if (!RecentlyRecorded(map, key)) {
      undo_.push_back({&map, key, it != map.end(), it != map.end() ? it->second : 0});
    }
    if (it != map.end()) {
      it->second = value;
    } else {
      map.emplace(key, value);
    }
  }
  // Whether `key` of `map` already has an undo entry since the innermost save point (or the
  // start of the item): that entry already holds the value to go back to, so a stream that
  // advances message after message inside one item keeps one entry, not one per message.
  // Looks back only a few entries: enough for the usual pattern, and cheap.
  bool RecentlyRecorded(const std::map<QueueId, uint64_t>& map, const QueueId& key) const {
    size_t floor = save_points_.empty() ? 0 : save_points_.back();
    for (size_t i = undo_.size(), looked = 0; i > floor && looked < 4; --i, ++looked) {
      const Undo& entry = undo_[i - 1];
      if (entry.map == &map && entry.key == key) return true;
    }
    return false;
  }

  MessageStoreImpl& store_;
  rocksdb::WriteBatch& batch_;
  // Undo entries beyond `size` are replayed backwards and dropped.
  void UndoTo(size_t size) {
    while (undo_.size() > size) {
      const auto& entry = undo_.back();
      if (entry.existed) {
        (*entry.map)[entry.key] = entry.old_value;
      } else {
        entry.map->erase(entry.key);
      }
      undo_.pop_back();
    }
  }

  std::vector<Undo> undo_;
  std::vector<size_t> save_points_;  // undo_ sizes at each nested SetSavePoint
  flatbuffers::FlatBufferBuilder builder_{512};
};

class MessageStoreImpl final : public MessageStore {
 public:
  MessageStoreImpl(Database* database, MessageStoreOptions options)
      : database_(database), options_(std::move(options)), family_(database->broker_family()) {}

  ~MessageStoreImpl() override {
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  Status Load();
  void Start() {
    thread_ = std::thread([this] {
      NameThisThread("store-commit");
      CommitLoop();
    });
  }

  void Submit(Work work, Done done, Durability durability) override {
    {
      std::lock_guard lock(queue_mu_);
      if (!stopping_) {
        pending_.push_back({std::move(work), std::move(done), durability});
        queue_cv_.notify_one();
        return;
      }
    }
    if (done) done(UnavailableError("message store of " + options_.self + " is shutting down"));
  }

  // When no group is being written, the caller writes the queue itself (its own item and any
  // waiting before it) instead of waking the commit thread and sleeping until it is done: two
  // thread switches fewer per write, which is most of a lone writer's cost. Groups still never
  // overlap, so Work functions run one at a time as before, only not always on one thread.
  void SubmitOrWriteNow(Work work, Done done, Durability durability) override {
    std::unique_lock lock(queue_mu_);
    if (stopping_) {
      lock.unlock();
      if (done) done(UnavailableError("message store of " + options_.self + " is shutting down"));
      return;
    }
    pending_.push_back({std::move(work), std::move(done), durability});
    if (writing_) {
      queue_cv_.notify_one();
      return;
    }
    WriteGroup(lock);
  }

  Status Commit(Work work, Durability durability) override {
    std::mutex mu;
    std::condition_variable cv;
    bool finished = false;
    Status result;
    SubmitOrWriteNow(std::move(work),
                     [&](const Status& status) {
                       std::lock_guard lock(mu);
                       result = status;
                       finished = true;
                       cv.notify_one();
                     },
                     durability);
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished; });
    return result;
  }

  uint64_t LastSequence(const QueueId& queue) const override {
    std::lock_guard lock(mu_);
    auto it = outbox_.find(queue);
    return it == outbox_.end() ? 0 : it->second.last;
  }
  uint64_t AckedThrough(const QueueId& queue) const override {
    std::lock_guard lock(mu_);
    auto it = outbox_.find(queue);
    return it == outbox_.end() ? 0 : it->second.acknowledged();
  }
  uint64_t AppliedThrough(const QueueId& from) const override {
    std::lock_guard lock(mu_);
    auto it = inbox_.find(from);
    return it == inbox_.end() ? 0 : it->second;
  }
  std::vector<std::pair<std::string, uint64_t>> InboundFrom(const std::string& peer) const override {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, uint64_t>> out;
    // Queues sort by peer first: the peer's are one run, starting at (peer, "").
    for (auto it = inbox_.lower_bound({peer, ""}); it != inbox_.end() && it->first.peer == peer; ++it) {
      out.emplace_back(it->first.stream, it->second);
    }
    return out;
  }
  std::vector<QueueId> QueuesTo(const std::string& peer) const override {
    std::lock_guard lock(mu_);
    std::vector<QueueId> out;
    // Links ask on every turn for every peer: read only this peer's run of queues.
    for (auto it = outbox_.lower_bound({peer, ""}); it != outbox_.end() && it->first.peer == peer; ++it) {
      out.push_back(it->first);
    }
    return out;
  }
  std::vector<OutboxQueueStats> OutboxStats() const override {
    std::lock_guard lock(mu_);
    std::vector<OutboxQueueStats> out;
    for (const auto& [queue, state] : outbox_) out.push_back({queue, state.last, state.acknowledged()});
    return out;
  }

  StatusOr<std::vector<StoredMessage>> Read(const QueueId& queue, uint64_t from_sequence,
                                            size_t max_count, size_t max_bytes) const override;
  void Acknowledge(const QueueId& queue, uint64_t sequence) override;

  uint64_t AddCommitListener(CommitListener listener) override {
    std::lock_guard lock(listeners_mu_);
    listeners_[++last_listener_id_] = std::move(listener);
    return last_listener_id_;
  }
  void RemoveCommitListener(uint64_t id) override {
    std::lock_guard lock(listeners_mu_);
    listeners_.erase(id);
  }
  uint64_t AddAckListener(AckListener listener) override {
    std::lock_guard lock(listeners_mu_);
    ack_listeners_[++last_listener_id_] = std::move(listener);
    return last_listener_id_;
  }
  void RemoveAckListener(uint64_t id) override {
    std::lock_guard lock(listeners_mu_);
    ack_listeners_.erase(id);
  }

  const std::string& self() const override { return options_.self; }

  void RecordContact(const std::string& peer, int64_t at_us) override {
    {
      std::lock_guard lock(mu_);
      link_states_[peer].last_contact_us = at_us;
    }
    PersistLinkState(peer);
  }
  void RecordLinkError(const std::string& peer, std::string_view error, int64_t at_us) override {
    {
      std::lock_guard lock(mu_);
      LinkStateCopy& state = link_states_[peer];
      state.last_error = std::string(error);
      state.last_error_us = at_us;
    }
    PersistLinkState(peer);
  }

  Counters counters() const override {
    std::lock_guard lock(mu_);
    return counters_;
  }

  // Unique without a system call per message: a random half drawn when the store opens, and
  // a counter.
  std::array<uint8_t, 16> NextMessageId() {
    std::array<uint8_t, 16> id = message_id_prefix_;
    uint64_t count = ++message_count_;
    for (int i = 0; i < 8; ++i) id[static_cast<size_t>(15 - i)] = static_cast<uint8_t>(count >> (8 * i));
    return id;
  }
  void DrawMessageIdPrefix() { randombytes_buf(message_id_prefix_.data(), 8); }

  // For GroupWriteContext.
  uint64_t CommittedLast(const QueueId& queue) const { return LastSequence(queue); }
  uint64_t CommittedApplied(const QueueId& queue) const { return AppliedThrough(queue); }
  // The acknowledged position as written (the peer's acknowledgement may be ahead of it).
  uint64_t CommittedAcked(const QueueId& queue) const {
    std::lock_guard lock(mu_);
    auto it = outbox_.find(queue);
    return it == outbox_.end() ? 0 : it->second.acked;
  }
  rocksdb::ColumnFamilyHandle* family() const { return family_; }

 private:
  struct Item {
    Work work;
    Done done;
    Durability durability;
  };
  struct QueueState {
    uint64_t last = 0;
    uint64_t acked = 0;         // written: the messages through it are removed
    uint64_t ack_received = 0;  // the peer's latest acknowledgement, written with the next group
    uint64_t acknowledged() const { return std::max(acked, ack_received); }
  };

  struct LinkStateCopy {
    int64_t last_contact_us = 0;
    std::string last_error;
    int64_t last_error_us = 0;
  };
  // Writes the peer's current link state (as it is when the write runs) without fsync.
  void PersistLinkState(const std::string& peer) {
    if (!ValidateName("peer", peer).ok()) return;
    Submit(
        [this, peer](WriteContext& write) -> Status {
          LinkStateCopy state;
          {
            std::lock_guard lock(mu_);
            state = link_states_[peer];
          }
          flatbuffers::FlatBufferBuilder builder(128);
          builder.Finish(wire::CreateLinkState(builder, state.last_contact_us,
                                               builder.CreateString(state.last_error),
                                               state.last_error_us));
          write.batch().Put(family_, keys::LinkStateKey(peer),
                            rocksdb::Slice(reinterpret_cast<const char*>(builder.GetBufferPointer()),
                                           builder.GetSize()));
          return Status::Ok();
        },
        nullptr, Durability::kRelaxed);
  }

  void CommitLoop();
  // Takes the next group out of pending_ and writes it on this thread: the commit thread, or a
  // caller of SubmitOrWriteNow. `lock` holds queue_mu_, no group is being written; the lock is
  // released while writing and held again on return. Work left for later wakes the commit
  // thread.
  void WriteGroup(std::unique_lock<std::mutex>& lock);
  // Writes `group`; only one runs at a time (writing_).
  void RunGroup(std::deque<Item>& group);
  // Puts the removal of every acknowledged message not yet removed into `context`'s write;
  // returns the queues it covers.
  std::vector<QueueId> WriteTrims(GroupWriteContext& context);

  Database* database_;
  MessageStoreOptions options_;
  rocksdb::ColumnFamilyHandle* family_;

  mutable std::mutex mu_;  // guards the committed positions and listeners
  std::map<QueueId, QueueState> outbox_;
  std::map<QueueId, uint64_t> inbox_;
  Counters counters_;
  std::map<std::string, LinkStateCopy> link_states_;
  std::set<QueueId> to_trim_;  // queues with an acknowledgement not yet written
  std::array<uint8_t, 16> message_id_prefix_{};
  uint64_t message_count_ = 0;  // the group's writer only

  std::mutex listeners_mu_;  // held while listeners run, so removal waits for a running one
  std::map<uint64_t, CommitListener> listeners_;
  std::map<uint64_t, AckListener> ack_listeners_;
  uint64_t last_listener_id_ = 0;

  std::mutex queue_mu_;  // guards pending_, trims_due_, writing_ and stopping_
  std::condition_variable queue_cv_;  // the commit thread waits on it
  std::deque<Item> pending_;
  bool trims_due_ = false;  // an acknowledgement arrived since the last group was taken
  std::chrono::steady_clock::time_point trims_due_at_;  // when they get a write of their own
  bool sleeping_ = false;   // the commit thread waits until woken (it was idle for kStayAwake)
  bool writing_ = false;    // a group is being written (by the commit thread or a caller)
  bool stopping_ = false;
  std::thread thread_;
  rocksdb::WriteBatch batch_;  // the group being built (whoever writes the group)
};

StatusOr<uint64_t> GroupWriteContext::Send(const QueueId& to, wire::MessageType type,
                                           std::span<const uint8_t> payload) {
  RETURN_IF_ERROR(ValidateName("peer", to.peer));
  RETURN_IF_ERROR(ValidateName("stream", to.stream));
  auto it = last_.find(to);
  uint64_t last = it != last_.end() ? it->second : store_.CommittedLast(to);
  uint64_t sequence = last + 1;
  if (last == 0 && store_.CommittedAcked(to) == 0) {
    // First message ever to this queue: record the queue so that it is found at start-up.
    batch_.Put(store_.family(), keys::QueuePrefix(keys::kAcked, to), keys::EncodeSequence(0));
  }

  std::array<uint8_t, 16> message_id = store_.NextMessageId();
  builder_.Clear();
  auto envelope = wire::CreateEnvelope(
      builder_, builder_.CreateVector(message_id.data(), message_id.size()),
      builder_.CreateString(to.stream), sequence, type, builder_.CreateString(store_.self()),
      NowMicros(), builder_.CreateVector(payload.data(), payload.size()));
  builder_.Finish(envelope);
  batch_.Put(store_.family(), keys::MessageKey(to, sequence),
             rocksdb::Slice(reinterpret_cast<const char*>(builder_.GetBufferPointer()),
                            builder_.GetSize()));
  Set(last_, to, sequence);
  return sequence;
}

void GroupWriteContext::RecordDeadLetter(const QueueId& from, uint64_t sequence,
                                         std::string_view reason,
                                         std::span<const uint8_t> envelope) {
  std::string value(reason);
  value.push_back('\0');
  value.append(reinterpret_cast<const char*>(envelope.data()), envelope.size());
  batch_.Put(store_.family(), keys::MessageKey(from, sequence, keys::kDeadLetter), value);
}

uint64_t GroupWriteContext::AppliedThrough(const QueueId& from) const {
  auto it = applied_.find(from);
  return it != applied_.end() ? it->second : store_.CommittedApplied(from);
}

void GroupWriteContext::MarkApplied(const QueueId& from, uint64_t sequence) {
  // Written once per group for each stream (WriteAppliedPositions), not once per message.
  Set(applied_, from, sequence);
}

void GroupWriteContext::WriteAppliedPositions() {
  for (const auto& [from, sequence] : applied_) {
    batch_.Put(store_.family(), keys::QueuePrefix(keys::kApplied, from),
               keys::EncodeSequence(sequence));
  }
}

void GroupWriteContext::WriteTrim(const QueueId& queue, uint64_t acked, uint64_t through) {
  if (through - acked <= kPointDeleteLimit) {
    for (uint64_t s = acked + 1; s <= through; ++s) {
      batch_.Delete(store_.family(), keys::MessageKey(queue, s));
    }
  } else {
    // It begins at the queue's bare prefix rather than at message acked + 1 (nothing before
    // that is left, so the same messages go): a range deletion must not begin at a key the
    // memtable keeps insert hints for (database.cc, QueueInsertHint).
    batch_.DeleteRange(store_.family(), keys::QueuePrefix(keys::kMessage, queue),
                       keys::MessageKey(queue, through + 1));
  }
  batch_.Put(store_.family(), keys::QueuePrefix(keys::kAcked, queue),
             keys::EncodeSequence(through));
  acked_[queue] = through;
}

void GroupWriteContext::EndItem(bool ok) {
  // Save points a Work left open are closed with it.
  while (!save_points_.empty()) ok ? PopSavePoint() : RollbackToSavePoint();
  if (ok) {
    (void)batch_.PopSavePoint();
    return;
  }
  (void)batch_.RollbackToSavePoint();
  UndoTo(0);
}

Status MessageStoreImpl::Load() {
  rocksdb::ReadOptions read_options;
  std::unique_ptr<rocksdb::Iterator> it(database_->db()->NewIterator(read_options, family_));
  // Acked positions (one per queue ever used) and applied positions.
  for (char kind : {keys::kAcked, keys::kApplied}) {
    std::string prefix(1, kind);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      auto parsed = keys::Parse(it->key().ToStringView());
      if (!parsed || it->value().size() != 8) {
        return DataLossError("broker state in " + database_->path().string() +
                             " has a malformed key or value");
      }
      uint64_t value = keys::ReadBigEndian(it->value().ToStringView());
      if (kind == keys::kAcked) {
        outbox_[parsed->queue].acked = value;
      } else {
        inbox_[parsed->queue] = value;
      }
    }
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "loading broker state"));
  // The last message of each queue is its last key; an empty queue ends at its acked position.
  for (auto& [queue, state] : outbox_) {
    state.last = state.acked;
    std::string upper = keys::MessageKey(queue, UINT64_MAX);
    it->SeekForPrev(upper);
    if (it->Valid()) {
      auto parsed = keys::Parse(it->key().ToStringView());
      if (parsed && parsed->kind == keys::kMessage && parsed->queue == queue) {
        state.last = std::max(state.last, parsed->sequence);
      }
    }
  }
  return FromRocks(it->status(), "loading broker state");
}

StatusOr<std::vector<StoredMessage>> MessageStoreImpl::Read(const QueueId& queue,
                                                            uint64_t from_sequence,
                                                            size_t max_count,
                                                            size_t max_bytes) const {
  std::vector<StoredMessage> out;
  std::string start = keys::MessageKey(queue, std::max<uint64_t>(from_sequence, 1));
  std::string end = keys::QueuePrefix(keys::kMessage, queue);
  end.back() = '\1';  // just past every key of this queue
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(database_->db()->NewIterator(read_options, family_));
  size_t bytes = 0;
  for (it->Seek(start); it->Valid() && out.size() < max_count; it->Next()) {
    if (!out.empty() && bytes + it->value().size() > max_bytes) break;
    auto key = it->key().ToStringView();
    out.push_back({keys::ReadBigEndian(key.substr(key.size() - 8)), it->value().ToString()});
    bytes += it->value().size();
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "reading outbox " + queue.ToString()));
  return out;
}

void MessageStoreImpl::Acknowledge(const QueueId& queue, uint64_t sequence) {
  {
    std::lock_guard lock(mu_);
    auto it = outbox_.find(queue);
    if (it == outbox_.end()) return;
    QueueState& state = it->second;
    if (sequence <= state.acknowledged() || sequence > state.last) return;
    state.ack_received = sequence;
    to_trim_.insert(queue);
  }
  {
    std::lock_guard lock(queue_mu_);
    if (!trims_due_) {
      trims_due_ = true;
      trims_due_at_ = std::chrono::steady_clock::now() + kTrimDelay;
      if (sleeping_) queue_cv_.notify_one();
    }
  }
  std::lock_guard lock(listeners_mu_);
  for (const auto& [id, listener] : ack_listeners_) listener(queue, sequence);
}

std::vector<QueueId> MessageStoreImpl::WriteTrims(GroupWriteContext& context) {
  std::vector<std::pair<QueueId, QueueState>> trims;
  {
    std::lock_guard lock(mu_);
    for (const QueueId& queue : to_trim_) trims.emplace_back(queue, outbox_[queue]);
    to_trim_.clear();
  }
  std::vector<QueueId> queues;
  for (const auto& [queue, state] : trims) {
    if (state.ack_received <= state.acked) continue;
    context.WriteTrim(queue, state.acked, state.ack_received);
    queues.push_back(queue);
  }
  return queues;
}

void MessageStoreImpl::WriteGroup(std::unique_lock<std::mutex>& lock) {
  writing_ = true;
  trims_due_ = false;  // the group writes every acknowledgement received so far
  std::deque<Item> group;
  size_t take = std::min(pending_.size(), options_.max_group_items);
  for (size_t i = 0; i < take; ++i) {
    group.push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
  lock.unlock();
  RunGroup(group);
  lock.lock();
  writing_ = false;
  if (!pending_.empty() || trims_due_ || stopping_) queue_cv_.notify_one();
}

void MessageStoreImpl::CommitLoop() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock lock(queue_mu_);
  Clock::time_point busy_at = Clock::now();
  for (;;) {
    const Clock::time_point now = Clock::now();
    if (!pending_.empty() || trims_due_) busy_at = now;
    const bool due = !pending_.empty() || stopping_ || (trims_due_ && now >= trims_due_at_);
    if (due && !writing_) {
      if (pending_.empty() && !trims_due_) return;  // stopping, and everything has been written
      WriteGroup(lock);
      continue;
    }
    if (writing_) {
      // A caller writes a group; it wakes us if it leaves work behind.
      queue_cv_.wait_for(lock, kTrimDelay);
    } else if (trims_due_) {
      // Only acknowledgements to write: they wait a moment for company.
      queue_cv_.wait_until(lock, trims_due_at_);
    } else if (now - busy_at < kStayAwake) {
      queue_cv_.wait_for(lock, kTrimDelay);
    } else {
      sleeping_ = true;
      queue_cv_.wait(lock);
      sleeping_ = false;
    }
  }
}

void MessageStoreImpl::RunGroup(std::deque<Item>& group) {
  // One batch for every group: cleared, its buffer kept, so that a group of thousands of
  // messages does not allocate (and page in) megabytes afresh each time. After an unusually
  // big group the buffer is let go rather than kept for good.
  if (batch_.GetDataSize() > kKeptBatchBytes) batch_ = rocksdb::WriteBatch();
  rocksdb::WriteBatch& batch = batch_;
  batch.Clear();
  GroupWriteContext context(*this, batch);
  std::vector<Status> results(group.size());
  bool sync = false;
  size_t ran = 0;
  for (; ran < group.size(); ++ran) {
    if (ran > 0 && batch.GetDataSize() >= options_.max_group_bytes) break;
    Item& item = group[ran];
    context.BeginItem();
    try {
      results[ran] = item.work(context);
    } catch (const std::exception& e) {
      results[ran] = InternalError(std::string("work item threw: ") + e.what());
    }
    context.EndItem(results[ran].ok());
    if (results[ran].ok() && item.durability == Durability::kSync) sync = true;
  }
  // Items beyond the byte limit go back to the front of the queue, in order.
  if (ran < group.size()) {
    std::lock_guard lock(queue_mu_);
    for (size_t i = group.size(); i-- > ran;) pending_.push_front(std::move(group[i]));
    group.resize(ran);
    results.resize(ran);
  }

  context.WriteAppliedPositions();
  const std::vector<QueueId> trimmed = WriteTrims(context);
  Status written;
  if (batch.Count() > 0) {
    rocksdb::WriteOptions write_options;
    write_options.sync = sync;
    written = FromRocks(database_->db()->Write(write_options, &batch),
                        "writing " + std::to_string(batch.Count()) + " changes of " +
                            options_.self);
  }

  std::vector<QueueId> grown;
  if (written.ok()) {
    {
      std::lock_guard lock(mu_);
      for (const auto& [queue, last] : context.last_) {
        outbox_[queue].last = last;
        grown.push_back(queue);
      }
      for (const auto& [queue, acked] : context.acked_) outbox_[queue].acked = acked;
      for (const auto& [queue, applied] : context.applied_) inbox_[queue] = applied;
      if (batch.Count() > 0) {
        ++counters_.writes;
        if (sync) ++counters_.synced_writes;
      }
      for (const auto& result : results) counters_.items += result.ok() ? 1 : 0;
    }
    if (!grown.empty()) {
      std::lock_guard lock(listeners_mu_);
      for (const auto& [id, listener] : listeners_) listener(grown);
    }
  } else {
    spdlog::error("{}", written.ToString());
    {
      std::lock_guard lock(mu_);
      ++counters_.failed_writes;
      // The acknowledgements stay received; their removal joins the next write.
      to_trim_.insert(trimmed.begin(), trimmed.end());
    }
    if (written.code() == StatusCode::kResourceExhausted) {
      // A full disk leaves RocksDB in an error state; clear it so the next write can succeed
      // once space returns. Failing to resume now is expected while the disk is still full.
      Status resumed = database_->Resume();
      if (!resumed.ok()) spdlog::debug("still full: {}", resumed.ToString());
    }
  }

  for (size_t i = 0; i < group.size(); ++i) {
    if (!group[i].done) continue;
    group[i].done(results[i].ok() ? written : results[i]);
  }
}

}  // namespace

StatusOr<std::unique_ptr<MessageStore>> MessageStore::Open(Database* database,
                                                           MessageStoreOptions options) {
  RETURN_IF_ERROR(ValidateName("service name", options.self));
  if (sodium_init() < 0) return InternalError("libsodium failed to initialise");
  auto store = std::make_unique<MessageStoreImpl>(database, std::move(options));
  RETURN_IF_ERROR(store->Load());
  store->DrawMessageIdPrefix();
  store->Start();
  return std::unique_ptr<MessageStore>(std::move(store));
}

}  // namespace keyline::broker

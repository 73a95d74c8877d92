#include <atomic>
#include <future>
#include <optional>
#include <set>
#include <thread>

#include <boost/test/unit_test.hpp>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "keyline/broker/database.h"
#include "keyline/broker/message_store.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::broker {
namespace {

using TestDir = keyline::testing::TempDir;

const QueueId kRecords{"kms", "records"};
const QueueId kStatus{"kms", "status"};
const QueueId kFromStation{"station-a1", "results"};

std::vector<uint8_t> Bytes(std::string_view text) { return {text.begin(), text.end()}; }

struct OpenStore {
  explicit OpenStore(const std::filesystem::path& dir) {
    auto opened = Database::Open({.path = dir / "db", .column_families = {"state"}});
    BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
    database = std::move(opened).value();
    auto made = MessageStore::Open(database.get(), {.self = "plant-a"});
    BOOST_REQUIRE_MESSAGE(made.ok(), made.status().ToString());
    store = std::move(made).value();
  }
  ~OpenStore() {
    store.reset();  // stop the commit thread before the database closes
    database.reset();
  }
  std::string Get(std::string_view key) {
    std::string value;
    rocksdb::Status s = database->db()->Get(rocksdb::ReadOptions(), database->Family("state"),
                                            rocksdb::Slice(key.data(), key.size()), &value);
    return s.ok() ? value : "<missing>";
  }
  std::unique_ptr<Database> database;
  std::unique_ptr<MessageStore> store;
};

Status SendText(MessageStore& store, const QueueId& queue, std::string_view text,
                uint64_t* sequence = nullptr) {
  return store.Commit([&](WriteContext& write) -> Status {
    auto payload = Bytes(text);
    ASSIGN_OR_RETURN(uint64_t seq, write.Send(queue, wire::MessageType::InjectionRecord, payload));
    if (sequence != nullptr) *sequence = seq;
    return Status::Ok();
  });
}

// Waits up to about a second for the acknowledged head of `queue` to be removed, so that
// `first` is the oldest message left.
bool WaitUntilOldestIs(MessageStore& store, const QueueId& queue, uint64_t first) {
  for (int i = 0; i < 100; ++i) {
    auto messages = store.Read(queue, 1, 100, 1 << 20);
    if (messages.ok() && !messages->empty() && messages->front().sequence == first) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string PayloadOf(const StoredMessage& message) {
  auto* envelope = flatbuffers::GetRoot<wire::Envelope>(message.envelope.data());
  return std::string(envelope->payload()->begin(), envelope->payload()->end());
}

BOOST_AUTO_TEST_SUITE(MessageStoreTests)

BOOST_AUTO_TEST_CASE(SequencesArePerQueueFromOneWithoutGaps) {
  TestDir dir;
  OpenStore open(dir.path());
  for (int i = 1; i <= 3; ++i) {
    uint64_t seq = 0;
    BOOST_REQUIRE(SendText(*open.store, kRecords, "r" + std::to_string(i), &seq).ok());
    BOOST_TEST(seq == uint64_t(i));
  }
  uint64_t status_seq = 0;
  BOOST_REQUIRE(SendText(*open.store, kStatus, "s1", &status_seq).ok());
  BOOST_TEST(status_seq == 1u);
  BOOST_TEST(open.store->LastSequence(kRecords) == 3u);

  auto messages = open.store->Read(kRecords, 1, 100, 1 << 20);
  BOOST_REQUIRE(messages.ok());
  BOOST_REQUIRE(messages->size() == 3u);
  auto* envelope = flatbuffers::GetRoot<wire::Envelope>((*messages)[2].envelope.data());
  BOOST_TEST(envelope->sequence() == 3u);
  BOOST_TEST(envelope->stream()->str() == "records");
  BOOST_TEST(envelope->sender()->str() == "plant-a");
  BOOST_TEST(envelope->message_id()->size() == 16u);
  BOOST_TEST(PayloadOf((*messages)[2]) == "r3");
}

BOOST_AUTO_TEST_CASE(QueuedMessagesAndPositionsSurviveReopen) {
  TestDir dir;
  {
    OpenStore open(dir.path());
    for (int i = 0; i < 5; ++i) BOOST_REQUIRE(SendText(*open.store, kRecords, "x").ok());
    BOOST_REQUIRE(open.store->Commit([](WriteContext& write) -> Status {
      write.MarkApplied(kFromStation, 7);
      return Status::Ok();
    }).ok());
    open.store->Acknowledge(kRecords, 2);
    // Acknowledge is asynchronous: a following commit is ordered after it.
    BOOST_REQUIRE(open.store->Commit([](WriteContext&) { return Status::Ok(); }).ok());
  }
  OpenStore reopened(dir.path());
  BOOST_TEST(reopened.store->LastSequence(kRecords) == 5u);
  BOOST_TEST(reopened.store->AckedThrough(kRecords) == 2u);
  BOOST_TEST(reopened.store->AppliedThrough(kFromStation) == 7u);
  auto messages = reopened.store->Read(kRecords, 1, 100, 1 << 20);
  BOOST_REQUIRE(messages.ok());
  BOOST_REQUIRE(messages->size() == 3u);
  BOOST_TEST((*messages)[0].sequence == 3u);
  uint64_t next = 0;
  BOOST_REQUIRE(SendText(*reopened.store, kRecords, "y", &next).ok());
  BOOST_TEST(next == 6u);
}

BOOST_AUTO_TEST_CASE(AcknowledgedMessagesAreRemovedEvenInLargeRanges) {
  TestDir dir;
  OpenStore open(dir.path());
  BOOST_REQUIRE(open.store->Commit([](WriteContext& write) -> Status {
    for (int i = 0; i < 1000; ++i) {
      RETURN_IF_ERROR(write.Send(kRecords, wire::MessageType::InjectionRecord, Bytes("m")));
    }
    return Status::Ok();
  }).ok());
  open.store->Acknowledge(kRecords, 10);    // point deletes
  open.store->Acknowledge(kRecords, 900);   // one range deletion
  open.store->Acknowledge(kRecords, 500);   // stale: ignored
  open.store->Acknowledge(kRecords, 5000);  // beyond the last message: ignored
  BOOST_REQUIRE(open.store->Commit([](WriteContext&) { return Status::Ok(); }).ok());
  BOOST_TEST(open.store->AckedThrough(kRecords) == 900u);
  auto messages = open.store->Read(kRecords, 1, 10000, 1 << 30);
  BOOST_REQUIRE(messages.ok());
  BOOST_REQUIRE(messages->size() == 100u);
  BOOST_TEST(messages->front().sequence == 901u);
  auto stats = open.store->OutboxStats();
  BOOST_REQUIRE(stats.size() == 1u);
  BOOST_TEST(stats[0].depth() == 100u);

  // Messages written after a range deletion, into the same memtable (with its insert hints),
  // are all there, and a second range deletion removes exactly its own.
  BOOST_REQUIRE(open.store->Commit([](WriteContext& write) -> Status {
    for (int i = 0; i < 1000; ++i) {
      RETURN_IF_ERROR(write.Send(kRecords, wire::MessageType::InjectionRecord, Bytes("n")));
    }
    return Status::Ok();
  }).ok());
  messages = open.store->Read(kRecords, 1, 10000, 1 << 30);
  BOOST_REQUIRE(messages.ok());
  BOOST_TEST(messages->size() == 1100u);
  open.store->Acknowledge(kRecords, 1500);
  BOOST_REQUIRE(open.store->Commit([](WriteContext&) { return Status::Ok(); }).ok());
  messages = open.store->Read(kRecords, 1, 10000, 1 << 30);
  BOOST_REQUIRE(messages.ok());
  BOOST_REQUIRE(messages->size() == 500u);
  BOOST_TEST(messages->front().sequence == 1501u);
  BOOST_TEST(messages->back().sequence == 2000u);
}

BOOST_AUTO_TEST_CASE(AcknowledgementIsSeenAtOnceAndItsMessagesGoWithinMilliseconds) {
  TestDir dir;
  {
    OpenStore open(dir.path());
    for (int i = 0; i < 3; ++i) BOOST_REQUIRE(SendText(*open.store, kRecords, "x").ok());
    std::vector<std::pair<std::string, uint64_t>> heard;
    uint64_t listener = open.store->AddAckListener([&](const QueueId& queue, uint64_t through) {
      heard.emplace_back(queue.ToString(), through);
    });
    open.store->Acknowledge(kRecords, 2);
    open.store->Acknowledge(kRecords, 1);  // stale: neither applied nor heard
    // The sender learns it at once, before any write.
    BOOST_TEST(open.store->AckedThrough(kRecords) == 2u);
    BOOST_TEST(open.store->OutboxStats().at(0).depth() == 1u);
    BOOST_REQUIRE(heard.size() == 1u);
    BOOST_TEST(heard[0].first == kRecords.ToString());
    BOOST_TEST(heard[0].second == 2u);
    open.store->RemoveAckListener(listener);
    // With nothing else to write, the acknowledged messages go on their own within moments.
    BOOST_TEST(WaitUntilOldestIs(*open.store, kRecords, 3));
    open.store->Acknowledge(kRecords, 3);
    BOOST_TEST(heard.size() == 1u);  // removed listeners hear nothing
  }
  // Closing the store writes what was acknowledged last.
  OpenStore reopened(dir.path());
  BOOST_TEST(reopened.store->AckedThrough(kRecords) == 3u);
  BOOST_TEST(reopened.store->OutboxStats().at(0).depth() == 0u);
}

BOOST_AUTO_TEST_CASE(AnAcknowledgementReachesTheDiskAfterALongQuiet) {
  TestDir dir;
  OpenStore open(dir.path());
  for (int i = 0; i < 2; ++i) BOOST_REQUIRE(SendText(*open.store, kRecords, "x").ok());
  // Quiet for longer than a busy store stays awake: the acknowledgement must wake it.
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  open.store->Acknowledge(kRecords, 1);
  BOOST_TEST(WaitUntilOldestIs(*open.store, kRecords, 2));
}

BOOST_AUTO_TEST_CASE(CommitThreadKeepsServingAfterACallerWroteTheAcknowledgements) {
  TestDir dir;
  OpenStore open(dir.path());
  for (int i = 0; i < 3; ++i) BOOST_REQUIRE(SendText(*open.store, kRecords, "x").ok());
  for (int round = 0; round < 20; ++round) {
    // The commit thread holds the acknowledgement back a moment for company; a caller's
    // commit takes it along within that moment, and the commit thread finds nothing to do.
    open.store->Acknowledge(kRecords, open.store->LastSequence(kRecords));
    std::this_thread::sleep_for(std::chrono::microseconds(500));
    BOOST_REQUIRE(SendText(*open.store, kStatus, "s").ok());
    BOOST_REQUIRE(SendText(*open.store, kRecords, "x").ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Work handed over without waiting is still written: the commit thread serves on.
  std::promise<Status> done;
  open.store->Submit([](WriteContext&) { return Status::Ok(); },
                     [&](const Status& status) { done.set_value(status); });
  auto outcome = done.get_future();
  BOOST_REQUIRE(outcome.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  BOOST_TEST(outcome.get().ok());
}

BOOST_AUTO_TEST_CASE(AnIdleStoreIsWrittenOnTheCallersThread) {
  TestDir dir;
  OpenStore open(dir.path());
  std::thread::id worked_on;
  std::optional<Status> outcome;
  open.store->SubmitOrWriteNow(
      [&](WriteContext& write) -> Status {
        worked_on = std::this_thread::get_id();
        return write.Send(kRecords, wire::MessageType::InjectionRecord, Bytes("now")).status();
      },
      [&](const Status& status) { outcome = status; });
  // Written, durable and reported before the call returned.
  BOOST_REQUIRE(outcome.has_value());
  BOOST_TEST(outcome->ok());
  BOOST_TEST((worked_on == std::this_thread::get_id()));
  BOOST_TEST(open.store->LastSequence(kRecords) == 1u);
  BOOST_TEST(open.store->counters().synced_writes == 1u);
}

BOOST_AUTO_TEST_CASE(FailingWorkTakesBackOnlyItsOwnChanges) {
  TestDir dir;
  OpenStore open(dir.path());
  auto* state = open.database->Family("state");
  std::atomic<int> finished = 0;
  Status failed_outcome;
  // Three items likely in one group; the middle one fails after writing.
  open.store->Submit(
      [&](WriteContext& write) -> Status {
        write.batch().Put(state, "a", "1");
        return write.Send(kRecords, wire::MessageType::InjectionRecord, Bytes("first")).status();
      },
      [&](const Status&) { ++finished; });
  open.store->Submit(
      [&](WriteContext& write) -> Status {
        write.batch().Put(state, "b", "2");
        RETURN_IF_ERROR(write.Send(kRecords, wire::MessageType::InjectionRecord, Bytes("bad")));
        write.MarkApplied(kFromStation, 1);
        return FailedPreconditionError("out of stock for product ecu-a");
      },
      [&](const Status& status) {
        failed_outcome = status;
        ++finished;
      });
  uint64_t third = 0;
  BOOST_REQUIRE(open.store->Commit([&](WriteContext& write) -> Status {
    write.batch().Put(state, "c", "3");
    ASSIGN_OR_RETURN(third, write.Send(kRecords, wire::MessageType::InjectionRecord, Bytes("third")));
    return Status::Ok();
  }).ok());
  BOOST_TEST(finished.load() == 2);
  BOOST_TEST(failed_outcome.message() == "out of stock for product ecu-a");
  BOOST_TEST(third == 2u);  // the failed item's sequence was given back: no gap
  BOOST_TEST(open.Get("a") == "1");
  BOOST_TEST(open.Get("b") == "<missing>");
  BOOST_TEST(open.Get("c") == "3");
  BOOST_TEST(open.store->AppliedThrough(kFromStation) == 0u);
  auto messages = open.store->Read(kRecords, 1, 10, 1 << 20);
  BOOST_REQUIRE(messages.ok());
  BOOST_REQUIRE(messages->size() == 2u);
  BOOST_TEST(PayloadOf((*messages)[0]) == "first");
  BOOST_TEST(PayloadOf((*messages)[1]) == "third");
}

BOOST_AUTO_TEST_CASE(AppliedMarkSeesEarlierItemsOfTheSameGroup) {
  TestDir dir;
  OpenStore open(dir.path());
  // A replayed sequence inside one group must be recognised before the group commits.
  std::atomic<int> applied = 0;
  std::atomic<int> skipped = 0;
  auto apply = [&](uint64_t sequence) {
    open.store->Submit(
        [&, sequence](WriteContext& write) -> Status {
          if (sequence <= write.AppliedThrough(kFromStation)) {
            ++skipped;
            return Status::Ok();
          }
          write.MarkApplied(kFromStation, sequence);
          ++applied;
          return Status::Ok();
        },
        nullptr);
  };
  for (uint64_t s : {1, 2, 2, 3, 1, 4}) apply(s);
  BOOST_REQUIRE(open.store->Commit([](WriteContext&) { return Status::Ok(); }).ok());
  BOOST_TEST(applied.load() == 4);
  BOOST_TEST(skipped.load() == 2);
  BOOST_TEST(open.store->AppliedThrough(kFromStation) == 4u);
}

BOOST_AUTO_TEST_CASE(ConcurrentWritersShareSyncedWrites) {
  TestDir dir;
  OpenStore open(dir.path());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 300;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<uint64_t> sequences;
  // Callers write groups themselves when no group is being written: work must still never
  // run two at a time.
  std::atomic<int> running = 0;
  std::atomic<bool> overlapped = false;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        uint64_t seq = 0;
        Status s = open.store->Commit([&](WriteContext& write) -> Status {
          if (running.fetch_add(1) != 0) overlapped = true;
          auto sent = write.Send(kRecords, wire::MessageType::InjectionRecord, Bytes("m"));
          running.fetch_sub(1);
          ASSIGN_OR_RETURN(seq, sent);
          return Status::Ok();
        });
        std::lock_guard lock(mu);
        BOOST_REQUIRE(s.ok());
        sequences.insert(seq);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  BOOST_TEST(!overlapped.load());
  BOOST_TEST(sequences.size() == size_t(kThreads * kPerThread));
  BOOST_TEST(*sequences.begin() == 1u);
  BOOST_TEST(*sequences.rbegin() == uint64_t(kThreads * kPerThread));
  auto counters = open.store->counters();
  BOOST_TEST(counters.items == uint64_t(kThreads * kPerThread));
  // Eight writers each waiting for durability must have shared fsyncs.
  BOOST_TEST(counters.synced_writes < counters.items);
  BOOST_TEST_MESSAGE("synced writes for " << counters.items << " items: " << counters.synced_writes);
}

BOOST_AUTO_TEST_CASE(CommitListenerHearsOnlyOfDurableMessages) {
  TestDir dir;
  OpenStore open(dir.path());
  std::vector<QueueId> heard;
  std::mutex mu;
  open.store->AddCommitListener([&](const std::vector<QueueId>& grown) {
    std::lock_guard lock(mu);
    heard.insert(heard.end(), grown.begin(), grown.end());
  });
  BOOST_REQUIRE(SendText(*open.store, kStatus, "s").ok());
  BOOST_REQUIRE(!open.store->Commit([](WriteContext& write) -> Status {
    RETURN_IF_ERROR(write.Send(kRecords, wire::MessageType::InjectionRecord, Bytes("x")));
    return AbortedError("changed my mind");
  }).ok());
  std::lock_guard lock(mu);
  BOOST_REQUIRE(heard.size() == 1u);
  BOOST_TEST(heard[0].ToString() == "kms/status");
}

BOOST_AUTO_TEST_CASE(InvalidQueueNamesAreRefused) {
  TestDir dir;
  OpenStore open(dir.path());
  Status s = SendText(*open.store, QueueId{"kms", "rec ords"}, "x");
  BOOST_TEST(s.code() == StatusCode::kInvalidArgument);
  BOOST_TEST(s.message() == "stream 'rec ords' may contain only letters, digits, '.', '_' and '-'");
}

BOOST_AUTO_TEST_CASE(SecondProcessCannotOpenALiveDataDir) {
  TestDir dir;
  OpenStore open(dir.path());
  auto second = Database::Open({.path = dir.path() / "db"});
  BOOST_TEST(second.status().code() == StatusCode::kUnavailable);
  BOOST_TEST(second.status().message().find("in use by another process") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::broker

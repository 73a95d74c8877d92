// keyline-bench queue: durable store-and-forward throughput between two processes.
//
// A sender process queues N messages of about S bytes, each counted as sent only once its
// synced write is durable; a receiver process (forked before any thread exists) applies each
// exactly once through a real CurveZMQ link on loopback. Figures: end-to-end messages/s and
// MB/s, enqueue-to-apply latency, duplicates applied (must be 0), and the same run's ceiling:
// RocksDB synced batch writes on this disk with the batching the sender's store used.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include <CLI/CLI.hpp>
#include <flatbuffers/flatbuffers.h>
#include <nlohmann/json.hpp>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "bench.h"
#include "keyline/broker/database.h"
#include "keyline/broker/link.h"
#include "keyline/broker/message_store.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/kms_pks_generated.h"

namespace keyline::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct QueueBenchOptions {
  uint64_t messages = 200000;
  size_t size = 256;
  size_t window = broker::LinkOptions{}.window;
  bool json = false;
};

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A StockRequest padded to about `size` bytes: a real message type, so the receiver verifies it.
std::vector<uint8_t> Payload(size_t size) {
  flatbuffers::FlatBufferBuilder builder(size + 64);
  std::string product(size > 48 ? size - 48 : 1, 'p');
  builder.Finish(wire::CreateStockRequest(builder, builder.CreateString("bench"),
                                          builder.CreateString(product), 1));
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

// CPU time (user + system) this process has used so far, all threads, in seconds.
double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double Percentile(std::vector<uint32_t>& values, double p) {
  if (values.empty()) return 0;
  size_t index = std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(index), values.end());
  return values[index] / 1000.0;
}

// Child process: bind, report the endpoint on `out`, apply until N arrived, report figures.
int RunReceiver(const QueueBenchOptions& options, const std::filesystem::path& dir,
                const broker::CurveKeyPair& server_keys, const broker::CurvePublicKey& sender_key,
                int out) {
  auto database = broker::Database::Open({.path = dir / "receiver"});
  if (!database.ok()) return 1;
  auto store = broker::MessageStore::Open(database->get(), {.self = "bench-receiver"});
  if (!store.ok()) return 1;
  broker::PeerRegistry peers;
  if (!peers.Add(sender_key, "bench-sender").ok()) return 1;

  std::vector<uint32_t> latencies_us;
  latencies_us.reserve(options.messages);
  uint64_t duplicates = 0;
  uint64_t last_sequence = 0;
  int64_t first_apply_us = 0;
  std::mutex last_mu;
  std::condition_variable last_cv;
  bool last_seen = false;
  auto handler = [&](const broker::Delivery& delivery, broker::WriteContext&) -> Status {
    // Runs on the receiver's commit thread only: no lock needed.
    if (delivery.sequence <= last_sequence) ++duplicates;
    last_sequence = std::max(last_sequence, delivery.sequence);
    int64_t now = NowUs();
    if (first_apply_us == 0) first_apply_us = now;
    latencies_us.push_back(static_cast<uint32_t>(std::max<int64_t>(0, now - delivery.created_at_us)));
    if (delivery.sequence == options.messages) {
      std::lock_guard lock(last_mu);
      last_seen = true;
      last_cv.notify_all();
    }
    return Status::Ok();
  };
  auto server = broker::LinkServer::Start(store->get(), handler,
                                          {.bind_endpoint = "tcp://127.0.0.1:0",
                                           .keys = server_keys,
                                           .peers = &peers,
                                           .link = {.window = options.window}});
  if (!server.ok()) {
    std::cerr << "receiver: " << server.status() << "\n";
    return 1;
  }
  std::string endpoint = (*server)->endpoint() + "\n";
  if (write(out, endpoint.data(), endpoint.size()) < 0) return 1;

  const broker::QueueId from{"bench-sender", "bench"};
  {
    // Sleep until the last message is being applied (no timer wake-ups competing with the
    // run for the CPU), then until that write is durable.
    std::unique_lock lock(last_mu);
    last_cv.wait(lock, [&] { return last_seen; });
  }
  while ((*store)->AppliedThrough(from) < options.messages) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  int64_t done_us = NowUs();
  double cpu_s = CpuSeconds();
  // Let the last acknowledgements reach the sender before the link goes away.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto counters = (*server)->counters();
  auto store_counters = (*store)->counters();
  server->reset();
  nlohmann::json result = {
      {"delivered", (*store)->AppliedThrough(from)},
      {"duplicates_applied", duplicates},
      {"duplicates_skipped", counters.duplicates_skipped},
      {"p50_ms", Percentile(latencies_us, 0.50)},
      {"p99_ms", Percentile(latencies_us, 0.99)},
      {"receiver_synced_writes", store_counters.synced_writes},
      {"receiver_cpu_s", cpu_s},
      {"done_us", done_us}};
  std::string line = result.dump() + "\n";
  if (write(out, line.data(), line.size()) < 0) return 1;
  return 0;
}

std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

// Synced RocksDB batch writes of `count` values of `size` bytes, `batch` per write.
double MeasureCeiling(const std::filesystem::path& dir, uint64_t count, size_t size, uint64_t batch) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(options, (dir / "ceiling").string(), &raw).ok()) return 0;
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  std::string value(size, 'v');
  auto start = Clock::now();
  for (uint64_t written = 0; written < count;) {
    rocksdb::WriteBatch write_batch;
    for (uint64_t i = 0; i < batch && written < count; ++i, ++written) {
      char key[24];
      std::snprintf(key, sizeof key, "%015llu", static_cast<unsigned long long>(written));
      write_batch.Put(key, value);
    }
    if (!db->Write(write_options, &write_batch).ok()) return 0;
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(count) / seconds;
}

int RunQueueBench(const QueueBenchOptions& options) {
  std::string pattern = (std::filesystem::temp_directory_path() / "keyline-bench-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return 1;
  std::filesystem::path dir = pattern;
  auto server_keys = broker::CurveKeyPair::Generate();
  auto sender_keys = broker::CurveKeyPair::Generate();
  if (!server_keys.ok() || !sender_keys.ok()) return 1;

  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return 1;
  pid_t child = fork();  // before any thread exists in this process
  if (child == 0) {
    close(pipe_fds[0]);
    _exit(RunReceiver(options, dir, *server_keys, sender_keys->public_key(), pipe_fds[1]));
  }
  close(pipe_fds[1]);
  std::string endpoint = ReadLine(pipe_fds[0]);
  if (endpoint.empty()) {
    std::cerr << "keyline-bench: the receiver process failed to start\n";
    return 1;
  }

  int exit_code = 0;
  nlohmann::json result;
  {
    auto database = broker::Database::Open({.path = dir / "sender"});
    auto store = broker::MessageStore::Open(database->get(), {.self = "bench-sender"});
    auto client = broker::LinkClient::Start(
        store->get(), [](const broker::Delivery&, broker::WriteContext&) { return Status::Ok(); },
        {.server_endpoint = endpoint,
         .server_key = server_keys->public_key(),
         .server_name = "bench-receiver",
         .keys = *sender_keys,
         .link = {.window = options.window}});
    if (!client.ok()) {
      std::cerr << "keyline-bench: " << client.status() << "\n";
      return 1;
    }
    const std::vector<uint8_t> payload = Payload(options.size);
    const broker::QueueId queue{"bench-receiver", "bench"};

    // Producer: one work item per message; at most `kOutstanding` waiting to become durable.
    // A producer that hit the limit sleeps until half of them are durable: woken once per
    // stretch, not once per message (a wake-up per message costs more than the message).
    constexpr uint64_t kOutstanding = 20000;
    constexpr uint64_t kResumeBelow = kOutstanding / 2;
    struct Progress {
      std::mutex mu;
      std::condition_variable cv;
      uint64_t total = 0;
      uint64_t durable = 0;
      uint64_t failed = 0;
      uint64_t submitted = 0;
      bool producer_waiting = false;
    } progress;
    progress.total = options.messages;
    int64_t start_us = NowUs();
    double start_cpu_s = CpuSeconds();
    auto start = Clock::now();
    for (uint64_t i = 0; i < options.messages; ++i) {
      {
        std::unique_lock lock(progress.mu);
        if (i - progress.durable - progress.failed >= kOutstanding) {
          progress.producer_waiting = true;
          progress.cv.wait(lock, [&] { return i - progress.durable - progress.failed < kResumeBelow; });
          progress.producer_waiting = false;
        }
        progress.submitted = i + 1;
      }
      // Both callables capture one or two pointers: small enough for std::function to hold
      // without a heap allocation per message.
      (*store)->Submit(
          [&queue, &payload](broker::WriteContext& write) -> Status {
            return write.Send(queue, wire::MessageType::StockRequest, payload).status();
          },
          [p = &progress](const Status& status) {
            std::lock_guard lock(p->mu);
            status.ok() ? ++p->durable : ++p->failed;
            uint64_t finished = p->durable + p->failed;
            if ((p->producer_waiting && p->submitted - finished < kResumeBelow) ||
                finished == p->total) {
              p->cv.notify_all();
            }
          });
    }
    uint64_t failed = 0;
    {
      std::unique_lock lock(progress.mu);
      progress.cv.wait(lock, [&] { return progress.durable + progress.failed == options.messages; });
      failed = progress.failed;
    }
    double enqueue_seconds = std::chrono::duration<double>(Clock::now() - start).count();

    result = nlohmann::json::parse(ReadLine(pipe_fds[0]), nullptr, false);
    if (result.is_discarded()) {
      std::cerr << "keyline-bench: the receiver process did not report\n";
      return 1;
    }
    // Both processes' CPU for the run (not the ceiling): on a shared machine this moves less
    // than the rate does, so it shows whether a change made the work cheaper.
    double cpu_s = CpuSeconds() - start_cpu_s + result["receiver_cpu_s"].get<double>();
    double seconds = static_cast<double>(result["done_us"].get<int64_t>() - start_us) / 1e6;
    auto counters = (*store)->counters();
    double group = counters.synced_writes == 0
                       ? 1.0
                       : static_cast<double>(counters.items) / static_cast<double>(counters.synced_writes);
    double ceiling_start_cpu_s = CpuSeconds();
    double ceiling = MeasureCeiling(dir, options.messages, payload.size() + 64,
                                    std::max<uint64_t>(1, static_cast<uint64_t>(group)));
    double ceiling_cpu_s = CpuSeconds() - ceiling_start_cpu_s;
    double rate = static_cast<double>(options.messages) / seconds;
    result.erase("done_us");
    result["messages"] = options.messages;
    result["size"] = options.size;
    result["enqueue_failed"] = failed;
    result["messages_per_s"] = rate;
    result["mb_per_s"] = rate * static_cast<double>(options.size) / 1e6;
    result["durable_enqueue_per_s"] = static_cast<double>(options.messages) / enqueue_seconds;
    result["sender_messages_per_synced_write"] = group;
    result["window"] = options.window;
    result["ceiling_per_s"] = ceiling;
    result["ratio_to_ceiling"] = ceiling > 0 ? rate / ceiling : 0;
    result["cpu_us_per_message"] = cpu_s * 1e6 / static_cast<double>(options.messages);
    result["ceiling_cpu_us_per_message"] = ceiling_cpu_s * 1e6 / static_cast<double>(options.messages);
    if (result["delivered"] != options.messages || result["duplicates_applied"] != 0 || failed != 0) {
      exit_code = 1;
    }
  }
  int status = 0;
  waitpid(child, &status, 0);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);

  if (options.json) {
    std::cout << result.dump() << "\n";
  } else {
    std::printf("queue: %llu messages of %zu bytes, sender and receiver in two processes over CurveZMQ\n",
                static_cast<unsigned long long>(options.messages), options.size);
    std::printf("  delivered              %llu (duplicates applied: %llu)\n",
                static_cast<unsigned long long>(result["delivered"].get<uint64_t>()),
                static_cast<unsigned long long>(result["duplicates_applied"].get<uint64_t>()));
    std::printf("  end to end             %.0f messages/s, %.1f MB/s\n",
                result["messages_per_s"].get<double>(), result["mb_per_s"].get<double>());
    std::printf("  enqueue to apply       p50 %.2f ms, p99 %.2f ms\n", result["p50_ms"].get<double>(),
                result["p99_ms"].get<double>());
    std::printf("  durable enqueue        %.0f messages/s (%.0f per synced write)\n",
                result["durable_enqueue_per_s"].get<double>(), result["sender_messages_per_synced_write"].get<double>());
    std::printf("  ceiling (RocksDB synced batches, same batching) %.0f writes/s; ratio %.2f\n",
                result["ceiling_per_s"].get<double>(), result["ratio_to_ceiling"].get<double>());
  }
  return exit_code;
}

}  // namespace

void RegisterQueueBench(CLI::App& root, BenchContext& context) {
  auto options = std::make_shared<QueueBenchOptions>();
  CLI::App* command = root.add_subcommand(
      "queue", "durable messages/s between two processes over a CurveZMQ link");
  command->add_option("--messages", options->messages, "messages to send (default 200000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  command->add_option("--size", options->size, "approximate message size in bytes (default 256)")
      ->check(CLI::Range(size_t{64}, size_t{512 * 1024}));
  command->add_option("--window", options->window, "messages in flight per stream (default: the link's)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  command->add_flag("--json", options->json, "print one JSON object as the last line");
  command->callback([options, &context] { context.exit_code = RunQueueBench(*options); });
}

}  // namespace keyline::bench

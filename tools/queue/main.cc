// keyline-queue: what waits where, on a live service's data dir, without stopping it.
//
//   keyline-queue list DIR [--json]            one row per queue (outbound) and per inbound stream
//   keyline-queue peek DIR PEER/STREAM [-n N] [--json]
//
// Exit status: 0 success, 1 the data dir cannot be read, 2 usage errors.
#include <chrono>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "keyline/broker/queue_inspector.h"

namespace {

using keyline::broker::QueueId;
using keyline::broker::QueueInspector;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Age(int64_t created_us) {
  if (created_us == 0) return "-";
  int64_t seconds = std::max<int64_t>(0, (NowMicros() - created_us) / 1000000);
  if (seconds < 120) return std::to_string(seconds) + "s";
  if (seconds < 7200) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds / 3600) + "h";
}

std::string Bytes(uint64_t bytes) {
  char text[32];
  if (bytes < 10240) {
    std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(bytes));
  } else if (bytes < 10ull << 20) {
    std::snprintf(text, sizeof text, "%.1fK", static_cast<double>(bytes) / 1024);
  } else {
    std::snprintf(text, sizeof text, "%.1fM", static_cast<double>(bytes) / (1 << 20));
  }
  return text;
}

nlohmann::json LinkJson(const keyline::broker::PeerLinkView& link) {
  auto at = [](int64_t us) { return us == 0 ? nlohmann::json(nullptr) : nlohmann::json(us); };
  return {{"last_contact_us", at(link.last_contact_us)},
          {"last_error", link.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(link.last_error)},
          {"last_error_us", at(link.last_error_us)}};
}

std::string ErrorText(const keyline::broker::PeerLinkView& link) {
  if (link.last_error.empty()) return "-";
  return Age(link.last_error_us) + " ago: " + link.last_error;
}

int Fail(const keyline::Status& status) {
  std::cerr << "keyline-queue: " << status.message() << "\n";
  return 1;
}

int List(const std::string& dir, bool json) {
  auto inspector = QueueInspector::Open(dir);
  if (!inspector.ok()) return Fail(inspector.status());
  auto outbound = (*inspector)->Outbound();
  if (!outbound.ok()) return Fail(outbound.status());
  auto inbound = (*inspector)->Inbound();
  if (!inbound.ok()) return Fail(inbound.status());

  if (json) {
    nlohmann::json out = {{"outbound", nlohmann::json::array()},
                          {"inbound", nlohmann::json::array()}};
    for (const auto& q : *outbound) {
      out["outbound"].push_back({{"queue", q.queue.ToString()},
                                 {"peer", q.queue.peer},
                                 {"stream", q.queue.stream},
                                 {"depth", q.depth},
                                 {"bytes", q.bytes},
                                 {"oldest_age_s", q.oldest_created_us == 0
                                                      ? nlohmann::json(nullptr)
                                                      : nlohmann::json((NowMicros() - q.oldest_created_us) / 1e6)},
                                 {"acked_through", q.acked_through},
                                 {"last_sequence", q.last_sequence},
                                 {"link", LinkJson(q.link)}});
    }
    for (const auto& s : *inbound) {
      out["inbound"].push_back({{"queue", s.from.ToString()},
                                {"peer", s.from.peer},
                                {"stream", s.from.stream},
                                {"applied_through", s.applied_through},
                                {"link", LinkJson(s.link)}});
    }
    std::cout << out.dump() << "\n";
    return 0;
  }

  std::printf("%-28s %8s %8s %7s %10s %10s %8s  %s\n", "OUTBOUND (peer/stream)", "DEPTH", "BYTES",
              "OLDEST", "ACKED", "LAST SEQ", "CONTACT", "LAST ERROR");
  for (const auto& q : *outbound) {
    std::printf("%-28s %8llu %8s %7s %10llu %10llu %8s  %s\n", q.queue.ToString().c_str(),
                static_cast<unsigned long long>(q.depth), Bytes(q.bytes).c_str(),
                Age(q.oldest_created_us).c_str(), static_cast<unsigned long long>(q.acked_through),
                static_cast<unsigned long long>(q.last_sequence), Age(q.link.last_contact_us).c_str(),
                ErrorText(q.link).c_str());
  }
  if (outbound->empty()) std::printf("(no outbound queues)\n");
  std::printf("\n%-28s %10s %8s  %s\n", "INBOUND (peer/stream)", "APPLIED", "CONTACT", "LAST ERROR");
  for (const auto& s : *inbound) {
    std::printf("%-28s %10llu %8s  %s\n", s.from.ToString().c_str(),
                static_cast<unsigned long long>(s.applied_through), Age(s.link.last_contact_us).c_str(),
                ErrorText(s.link).c_str());
  }
  if (inbound->empty()) std::printf("(no inbound streams)\n");
  return 0;
}

int Peek(const std::string& dir, const std::string& queue_text, size_t count, bool json) {
  auto queue = QueueId::Parse(queue_text);
  if (!queue.ok()) {
    std::cerr << "keyline-queue: " << queue.status().message() << "\n";
    return 2;
  }
  auto inspector = QueueInspector::Open(dir);
  if (!inspector.ok()) return Fail(inspector.status());
  auto messages = (*inspector)->Peek(*queue, count);
  if (!messages.ok()) return Fail(messages.status());
  for (const auto& m : *messages) {
    nlohmann::json line = {{"sequence", m.sequence}, {"verified", m.verified}};
    if (m.verified) {
      line["stream"] = m.stream;
      line["type"] = m.type;
      line["sender"] = m.sender;
      line["message_id"] = m.message_id;
      line["created_at_us"] = m.created_us;
      line["payload_bytes"] = m.payload_bytes;
      line["payload"] = nlohmann::json::parse(m.payload_json, nullptr, false);
      if (line["payload"].is_discarded()) line["payload"] = m.payload_json;
    } else {
      line["problem"] = m.problem;
    }
    std::cout << (json ? line.dump() : line.dump(2)) << "\n";
  }
  if (!json && messages->empty()) std::cout << "(" << queue->ToString() << " is empty)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyline-queue: inspect a Keyline service's queues without stopping it"};
  app.require_subcommand(1);

  std::string dir;
  bool json = false;
  auto* list = app.add_subcommand("list", "one row per queue: depth, bytes, oldest age, positions");
  list->add_option("DIR", dir, "the service's data dir")->required();
  list->add_flag("--json", json, "print one JSON object");

  std::string queue;
  size_t count = 10;
  auto* peek = app.add_subcommand("peek", "the first waiting messages of one queue");
  peek->add_option("DIR", dir, "the service's data dir")->required();
  peek->add_option("QUEUE", queue, "peer/stream, as printed by list")->required();
  peek->add_option("-n", count, "how many messages (default 10)")->check(CLI::Range(1, 100000));
  peek->add_flag("--json", json, "one JSON object per line");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "keyline-queue: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (*list) return List(dir, json);
  return Peek(dir, queue, count, json);
}

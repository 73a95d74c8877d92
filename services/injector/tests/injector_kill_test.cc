// keyline-injector as a real process, SIGKILLed at random moments while the EOL tester
// (`keyline-injector provision`, another process) provisions ECU after ECU and asks again
// until it gets an answer. At the end every ECU has exactly one record at the KMS, no key set
// went to two ECUs, every ECU the tester saw provisioned is INJECTED, and the counts add up.
#include <boost/test/unit_test.hpp>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "keyline/common/hex.h"
#include "keyline/schemas/decode.h"
#include "keyline/testing/child_process.h"
#include "station_harness.h"

namespace keyline::injector {
namespace {

using namespace testing;
using keyline::testing::ChildProcess;
using keyline::testing::RunCommand;

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

BOOST_AUTO_TEST_CASE(sigkilled_agent_loses_and_duplicates_nothing) {
  const uint64_t seed = std::random_device{}();
  BOOST_TEST_MESSAGE("seed " << seed);
  std::mt19937_64 random(seed);
  constexpr uint64_t kEcus = 20;
  constexpr size_t kStock = 60;

  Station station(kStock, /*package_timeout_ms=*/3000,
                  "tcp://127.0.0.1:" + std::to_string(FreePort()));
  // Some loads go unanswered and are resent: loads last longer, so more kills land mid-load.
  station.ecu().simulator().SetFaults({.timeout = 0.15}, seed);
  const std::filesystem::path dir = station.config_path().parent_path();
  ChildProcess agent({KEYLINE_INJECTOR_PATH, "--config", station.config_path().string()},
                     dir / "agent.log");
  BOOST_REQUIRE(agent.Start());
  BOOST_REQUIRE(agent.WaitForLine("listening on ", 20s));

  // Kills at random moments, each followed by a restart, while the tester works.
  std::atomic<bool> done{false};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    std::mt19937_64 pick(seed + 1);
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(150 + pick() % 500));
      if (done.load()) break;
      agent.Kill();
      ++kills;
      if (!agent.Start()) return;
      agent.WaitForLine("listening on ", 20s);
    }
  });

  // The tester: one ECU after the other, asking again until the agent answers with a final
  // outcome (PKS_UNREACHABLE and a dead agent are not final).
  std::map<std::string, std::string> outcome_of;  // uid hex -> final outcome
  for (uint64_t n = 1; n <= kEcus; ++n) {
    std::string uid = ToHex(Uid(n));
    for (int attempt = 0; attempt < 200 && outcome_of.count(uid) == 0; ++attempt) {
      auto run = RunCommand({KEYLINE_INJECTOR_PATH, "provision", "--config",
                             station.config_path().string(), "--uid", uid, "--product", kProduct,
                             "--json", "--timeout-ms", "2500"},
                            dir / "tester.out");
      auto line = run.output.substr(0, run.output.find('\n'));
      auto json = nlohmann::json::parse(line, nullptr, false);
      if (!json.is_discarded() && json.is_object() && json["outcome"] != "PKS_UNREACHABLE") {
        outcome_of[uid] = json["outcome"];
      } else {
        std::this_thread::sleep_for(50ms);
      }
    }
    BOOST_REQUIRE_MESSAGE(outcome_of.count(uid) == 1, "ECU " << uid << " never got an answer");
  }
  done.store(true);
  killer.join();
  BOOST_TEST_MESSAGE(kills.load() << " SIGKILLs");
  BOOST_TEST(kills.load() >= 3);
  if (!agent.running()) BOOST_REQUIRE(agent.Start());

  // Everything reported reaches the KMS once.
  auto records = station.Records(kEcus);
  std::map<std::string, int> records_per_ecu;
  std::set<std::string> key_sets;
  size_t provisioned = 0;
  for (const auto& record : records) {
    std::string uid = ToHex(record.ecu_uid);
    ++records_per_ecu[uid];
    BOOST_TEST(key_sets.insert(record.key_set_id).second, "key set " << record.key_set_id
                                                                     << " recorded twice");
    BOOST_TEST(record.signature_valid);
    if (outcome_of[uid] == "provisioned") {
      BOOST_TEST(record.injected, "ECU " << uid << " was told provisioned but is "
                                         << record.burn_reason);
      ++provisioned;
    } else {
      BOOST_TEST(!record.injected, "ECU " << uid << " failed (" << outcome_of[uid]
                                          << ") but is recorded INJECTED");
    }
  }
  BOOST_TEST(records_per_ecu.size() == kEcus);
  for (const auto& [uid, count] : records_per_ecu) BOOST_TEST(count == 1, "ECU " << uid);
  BOOST_TEST_MESSAGE(provisioned << " of " << kEcus << " provisioned");
  BOOST_TEST(provisioned >= kEcus / 2);

  auto pks = station.plant().pks().Snapshot();
  BOOST_REQUIRE(pks.products.size() == 1u);
  const auto& product = pks.products[0];
  BOOST_TEST(product.injected == provisioned);
  BOOST_TEST(product.injected + product.burned == kEcus);
  BOOST_TEST(product.reserved == 0u);
  BOOST_TEST(product.in_stock + product.injected + product.burned == kStock);
  BOOST_TEST(agent.Stop() == 0);
}

}  // namespace
}  // namespace keyline::injector

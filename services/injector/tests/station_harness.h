// A station on loopback for the injector's tests: the real PKS in process with a stand-in KMS
// (plant_harness.h), the real ECU simulator behind a real CurveZMQ RPC endpoint, and an
// injector.toml for an agent of station kStation (run in process or as keyline-injector).
#pragma once

#include <boost/test/unit_test.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "keyline/broker/peer_registry.h"
#include "keyline/broker/rpc.h"
#include "keyline/ecu_sim/ecu_simulator.h"
#include "keyline/injector/injector_config.h"
#include "keyline/injector/injector_service.h"
#include "keyline/wire/envelope_generated.h"
#include "plant_harness.h"

namespace keyline::injector::testing {

using namespace std::chrono_literals;
using pks::testing::PlantHarness;
using pks::testing::ProductSpec;

inline constexpr char kStation[] = "line1-eol1";
inline constexpr char kProduct[] = "acme-bcm";

inline void WriteSecret(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), 0600);
}

// keyline-ecu-sim's simulator, served on loopback to this station's key.
class EcuBench {
 public:
  EcuBench(const std::filesystem::path& dir, const std::filesystem::path& transport_key_file,
           const broker::CurvePublicKey& injector_key) {
    WriteSecret(dir / "state.key", std::string(64, 'a') + "\n");
    ecu_sim::EcuSimulatorOptions options;
    options.state_file = dir / "ecu-sim.state";
    options.state_key_file = dir / "state.key";
    options.transport_key_file = transport_key_file;
    auto simulator = ecu_sim::EcuSimulator::Open(options);
    BOOST_REQUIRE_MESSAGE(simulator.ok(), simulator.status().ToString());
    simulator_ = std::move(simulator).value();
    keys_ = broker::CurveKeyPair::Generate().value();
    BOOST_REQUIRE(keys_.Save(dir / "ecu-sim.curve").ok());
    BOOST_REQUIRE(peers_.Add(injector_key, kStation).ok());
    auto server = broker::RpcServer::Start(
        [this](const std::string& peer, std::span<const uint8_t> request) {
          return simulator_->Handle(peer, request);
        },
        {.bind_endpoint = "tcp://127.0.0.1:0", .keys = keys_, .peers = &peers_});
    BOOST_REQUIRE_MESSAGE(server.ok(), server.status().ToString());
    server_ = std::move(server).value();
  }
  ~EcuBench() { server_.reset(); }

  std::string endpoint() const { return server_->endpoint(); }
  ecu_sim::EcuSimulator& simulator() { return *simulator_; }
  // Slots of `uid` that hold a key.
  std::vector<uint8_t> LoadedSlots(const EcuUid& uid) {
    std::vector<uint8_t> loaded;
    for (const auto& ecu : simulator_->Ecus()) {
      if (ecu.uid != uid) continue;
      for (const auto& slot : ecu.slots) {
        if (slot.loaded) loaded.push_back(slot.slot);
      }
    }
    return loaded;
  }

 private:
  std::unique_ptr<ecu_sim::EcuSimulator> simulator_;
  broker::CurveKeyPair keys_;
  broker::PeerRegistry peers_;
  std::unique_ptr<broker::RpcServer> server_;
};

// A plant with stock, an ECU simulator and one injector agent for station kStation.
class Station {
 public:
  // `eol_listen`: a fixed endpoint when a separate process must find the agent.
  explicit Station(size_t stock = 5, int package_timeout_ms = 10000,
                   std::string eol_listen = "tcp://127.0.0.1:0") {
    plant_.FixStationPort();
    plant_.Configure({ProductSpec{.name = kProduct}});
    if (stock > 0) plant_.Ship(kProduct, stock);
    plant_.StartPks();
    for (int i = 0; i < 200 && InStock() < stock; ++i) std::this_thread::sleep_for(25ms);
    BOOST_REQUIRE(InStock() == stock);
    const std::filesystem::path dir = plant_.dir() / "station";
    std::filesystem::create_directories(dir);
    BOOST_REQUIRE(plant_.station_keys(kStation).Save(dir / "injector.curve").ok());
    std::ofstream(dir / "pks.pub") << "public = "
                                   << broker::CurvePublicKeyToZ85(plant_.pks_public_key()) << "\n";
    ecu_ = std::make_unique<EcuBench>(dir, plant_.transport_key_file(),
                                      plant_.station_keys(kStation).public_key());
    std::ofstream(dir / "ecu.pub") << "public = " << ReadPublicLine(dir / "ecu-sim.curve") << "\n";
    std::ofstream(dir / "injector.toml")
        << "data_dir = \"data\"\n[log]\nlevel = \"warn\"\n"
        << "[station]\nid = \"" << kStation << "\"\ncurve_key_file = \"injector.curve\"\n"
        << "[pks]\nplant = \"plant-a\"\nconnect = \"" << plant_.station_endpoint()
        << "\"\ncurve_public_key_file = \"pks.pub\"\nheartbeat_timeout_ms = 1000\n"
        << "[ecu]\nconnect = \"" << ecu_->endpoint()
        << "\"\ncurve_public_key_file = \"ecu.pub\"\nload_timeout_ms = 300\nload_attempts = 3\n"
        << "[eol]\nlisten = \"" << eol_listen << "\"\ntester_curve_key_file = \"tester.curve\"\n"
        << "[provisioning]\npackage_timeout_ms = " << package_timeout_ms
        << "\nack_wait_ms = 3000\n";
    config_path_ = dir / "injector.toml";
    auto config = LoadInjectorConfig(config_path_);
    BOOST_REQUIRE_MESSAGE(config.ok(), config.status().ToString());
    config_ = *config;
  }

  void StartAgent() {
    auto agent = InjectorService::Start(config_);
    BOOST_REQUIRE_MESSAGE(agent.ok(), agent.status().ToString());
    agent_ = std::move(agent).value();
    config_.eol_endpoint = agent_->eol_endpoint();  // the real port, for CallProvision
  }
  void StopAgent() { agent_.reset(); }

  PlantHarness& plant() { return plant_; }
  EcuBench& ecu() { return *ecu_; }
  InjectorService& agent() { return *agent_; }
  const InjectorConfig& config() const { return config_; }
  const std::filesystem::path& config_path() const { return config_path_; }

  // Waits until the KMS stand-in holds `count` records.
  std::vector<pks::testing::RecordView> Records(size_t count) {
    plant_.kms().WaitFor(
        [&](const std::vector<pks::testing::TestPeer::Received>& received) {
          return static_cast<size_t>(std::count_if(received.begin(), received.end(),
                                                   [](const auto& r) {
                                                     return r.type ==
                                                            wire::MessageType::InjectionRecord;
                                                   })) >= count;
        },
        15s);
    return plant_.Records();
  }

 private:
  uint64_t InStock() {
    auto snapshot = plant_.pks().Snapshot();
    return snapshot.products.empty() ? 0 : snapshot.products[0].in_stock;
  }

  static std::string ReadPublicLine(const std::filesystem::path& key_file) {
    std::ifstream in(key_file);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("public = ", 0) == 0) return line.substr(9);
    }
    return "";
  }

  PlantHarness plant_{{kStation}};
  std::unique_ptr<EcuBench> ecu_;
  std::filesystem::path config_path_;
  InjectorConfig config_;
  std::unique_ptr<InjectorService> agent_;
};

inline EcuUid Uid(uint64_t n) { return PlantHarness::Uid(n); }

}  // namespace keyline::injector::testing

// The injector agent against the real PKS (in process, with a stand-in KMS: plant_harness.h)
// and the real ECU simulator behind a real CurveZMQ RPC endpoint: every ECU is loaded through
// the SHE protocol, and the KMS side sees the records the PKS writes.
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>

#include <fstream>
#include <thread>

#include "keyline/broker/peer_registry.h"
#include "keyline/broker/rpc.h"
#include "keyline/common/hex.h"
#include "keyline/ecu_sim/ecu_simulator.h"
#include "keyline/injector/injector_config.h"
#include "keyline/injector/injector_service.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/eol_generated.h"
#include "plant_harness.h"

namespace keyline::injector {

// For Boost.Test's messages.
std::ostream& operator<<(std::ostream& out, EcuError error) { return out << EcuErrorName(error); }

namespace {

using namespace std::chrono_literals;
using pks::testing::PlantHarness;
using pks::testing::ProductSpec;

constexpr char kStation[] = "line1-eol1";
constexpr char kProduct[] = "acme-bcm";

void WriteSecret(const std::filesystem::path& path, const std::string& text) {
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
  explicit Station(size_t stock = 5, int package_timeout_ms = 10000) {
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
        << "[eol]\nlisten = \"tcp://127.0.0.1:0\"\ntester_curve_key_file = \"tester.curve\"\n"
        << "[provisioning]\npackage_timeout_ms = " << package_timeout_ms
        << "\nack_wait_ms = 3000\n";
    auto config = LoadInjectorConfig(dir / "injector.toml");
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
  InjectorConfig config_;
  std::unique_ptr<InjectorService> agent_;
};

EcuUid Uid(uint64_t n) { return PlantHarness::Uid(n); }

BOOST_AUTO_TEST_CASE(provisions_an_ecu_and_the_kms_gets_the_injected_record) {
  Station station;
  station.StartAgent();
  ProvisionOutcome outcome = station.agent().Provision(Uid(1), kProduct);
  BOOST_TEST_INFO(outcome.message);
  BOOST_TEST(outcome.outcome == kOutcomeProvisioned);
  BOOST_TEST(outcome.report == kReportAcknowledged);
  BOOST_TEST(!outcome.repeated);
  BOOST_REQUIRE(outcome.slots.size() == 3u);
  for (const SlotOutcome& slot : outcome.slots) {
    BOOST_TEST(slot.error == EcuError::kNone);
    BOOST_TEST(slot.attempts == 1);
  }
  BOOST_TEST(station.ecu().LoadedSlots(Uid(1)) == (std::vector<uint8_t>{1, 4, 5}),
             boost::test_tools::per_element());
  auto records = station.Records(1);
  BOOST_REQUIRE(records.size() == 1u);
  BOOST_TEST(records[0].injected);
  BOOST_TEST(records[0].signature_valid);
  BOOST_TEST(records[0].station == kStation);
  BOOST_TEST(records[0].key_set_id == outcome.key_set_id);
  BOOST_TEST(records[0].slots_with_proof == 3u);

  // Asked again (the tester retried): the same answer from the journal, nothing loaded again.
  uint64_t loads = station.ecu().simulator().counters().loads;
  ProvisionOutcome again = station.agent().Provision(Uid(1), kProduct);
  BOOST_TEST(again.outcome == kOutcomeProvisioned);
  BOOST_TEST(again.repeated);
  BOOST_TEST(again.key_set_id == outcome.key_set_id);
  BOOST_TEST(station.ecu().simulator().counters().loads == loads);
  BOOST_TEST(station.agent().Snapshot().provisioned == 1u);
}

BOOST_AUTO_TEST_CASE(the_eol_endpoint_serves_the_tester_key_and_names_a_bad_field) {
  Station station;
  station.StartAgent();
  auto outcome = CallProvision(station.config(), Uid(2), kProduct, 20000);
  BOOST_REQUIRE_MESSAGE(outcome.ok(), outcome.status().ToString());
  BOOST_TEST(outcome->outcome == kOutcomeProvisioned);
  BOOST_TEST(outcome->station == kStation);
  BOOST_TEST(outcome->plant == "plant-a");

  // A UID of the wrong length: refused with the field named, nothing reserved.
  auto tester = broker::CurveKeyPair::Load(station.config().tester_curve_key_file).value();
  auto agent_key = broker::LoadCurvePublicKeyFile(station.config().curve_key_file).value();
  auto client = broker::RpcClient::Connect({.server_endpoint = station.agent().eol_endpoint(),
                                            .server_key = agent_key,
                                            .keys = tester})
                    .value();
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint8_t> short_uid(14, 0xAB);
  fbb.Finish(wire::CreateEolRequest(fbb, wire::EolOp::PROVISION, fbb.CreateVector(short_uid),
                                    fbb.CreateString(kProduct)));
  auto reply = client->Call(std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()), 5000);
  BOOST_REQUIRE(!reply.ok());
  BOOST_TEST(reply.status().message().find("EolRequest.ecu_uid") != std::string::npos);

  // A caller with any other key is not admitted: no answer.
  auto stranger = broker::RpcClient::Connect({.server_endpoint = station.agent().eol_endpoint(),
                                              .server_key = agent_key,
                                              .keys = broker::CurveKeyPair::Generate().value()})
                      .value();
  auto refused = stranger->Call(std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()),
                                1000);
  BOOST_TEST(!refused.ok());
  BOOST_TEST(station.plant().pks().Snapshot().open_reservations == 0u);
}

BOOST_AUTO_TEST_CASE(pks_refusals_reach_the_tester_with_their_code) {
  Station station(/*stock=*/0);
  station.StartAgent();
  ProvisionOutcome out_of_stock = station.agent().Provision(Uid(3), kProduct);
  BOOST_TEST(out_of_stock.outcome == "OUT_OF_STOCK");
  BOOST_TEST(out_of_stock.slots.empty());
  ProvisionOutcome unknown = station.agent().Provision(Uid(3), "no-such-product");
  BOOST_TEST(unknown.outcome == "UNKNOWN_PRODUCT");
  BOOST_TEST(station.ecu().simulator().counters().loads == 0u);
}

BOOST_AUTO_TEST_CASE(a_pks_that_is_down_then_back_loses_nothing) {
  Station station(/*stock=*/5, /*package_timeout_ms=*/800);
  station.plant().StopPks();
  station.StartAgent();
  // No PKS: the tester hears so quickly; the request waits in the outbox.
  ProvisionOutcome unreachable = station.agent().Provision(Uid(4), kProduct);
  BOOST_TEST(unreachable.outcome == kOutcomePksUnreachable);

  // The PKS comes back and answers the queued request; the package is journaled.
  station.plant().StartPks();
  for (int i = 0; i < 100 && station.agent().Snapshot().pending == 0; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  BOOST_REQUIRE(station.agent().Snapshot().pending == 1u);

  // The PKS goes down again before the tester asks again: the agent loads from its journal,
  // and the result waits in its outbox.
  station.plant().StopPks();
  ProvisionOutcome offline = station.agent().Provision(Uid(4), kProduct);
  BOOST_TEST_INFO(offline.message);
  BOOST_TEST(offline.outcome == kOutcomeProvisioned);
  BOOST_TEST(offline.report == kReportQueued);
  BOOST_TEST(station.agent().Snapshot().messages_queued >= 1u);

  // Even an agent restart in between loses nothing: the PKS gets the result once it is back.
  station.StopAgent();
  station.StartAgent();
  station.plant().StartPks();
  auto records = station.Records(1);
  BOOST_REQUIRE(records.size() == 1u);
  BOOST_TEST(records[0].injected);
  BOOST_TEST(records[0].key_set_id == offline.key_set_id);
  for (int i = 0; i < 100 && station.agent().Snapshot().messages_queued != 0; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  BOOST_TEST(station.agent().Snapshot().messages_queued == 0u);
  auto pks = station.plant().pks().Snapshot();
  BOOST_REQUIRE(pks.products.size() == 1u);
  BOOST_TEST(pks.products[0].injected == 1u);
  BOOST_TEST(pks.products[0].reserved == 0u);
}

BOOST_AUTO_TEST_CASE(a_silent_ecu_is_retried_then_reported_and_burned) {
  Station station;
  station.StartAgent();
  station.ecu().simulator().SetFaults({.timeout = 1.0}, 7);
  ProvisionOutcome outcome = station.agent().Provision(Uid(5), kProduct);
  BOOST_TEST(outcome.outcome == "TIMEOUT");
  BOOST_REQUIRE(outcome.slots.size() == 3u);
  BOOST_TEST(outcome.slots[0].attempts == 3);
  BOOST_TEST(outcome.slots[1].error == EcuError::kNotAttempted);
  BOOST_TEST(outcome.slots[2].error == EcuError::kNotAttempted);
  auto records = station.Records(1);
  BOOST_REQUIRE(records.size() == 1u);
  BOOST_TEST(!records[0].injected);
  BOOST_TEST(station.agent().Snapshot().failed == 1u);
}

BOOST_AUTO_TEST_CASE(a_lost_answer_whose_load_landed_is_not_resent_forever) {
  Station station;
  station.StartAgent();
  // Power lost after the ECU stored the key: the resend is refused (SHE.md field notes). The
  // first slot is MASTER_ECU_KEY, authorised by itself: its resend no longer verifies.
  station.ecu().simulator().SetFaults({.power_loss = 1.0}, 7);
  ProvisionOutcome outcome = station.agent().Provision(Uid(6), kProduct);
  BOOST_TEST(outcome.outcome == "KEY_UPDATE_ERROR");
  BOOST_REQUIRE(!outcome.slots.empty());
  BOOST_TEST(outcome.slots[0].attempts == 2);
  BOOST_TEST(station.ecu().LoadedSlots(Uid(6)) == (std::vector<uint8_t>{1}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_wrong_proof_is_caught_by_the_injector_itself) {
  Station station;
  station.StartAgent();
  station.ecu().simulator().SetFaults({.wrong_proof = 1.0}, 7);
  ProvisionOutcome outcome = station.agent().Provision(Uid(7), kProduct);
  BOOST_TEST(outcome.outcome == "WRONG_PROOF");
  BOOST_REQUIRE(!outcome.slots.empty());
  BOOST_TEST(outcome.slots[0].error == EcuError::kWrongProof);
  auto records = station.Records(1);
  BOOST_REQUIRE(records.size() == 1u);
  BOOST_TEST(!records[0].injected);
  BOOST_TEST(records[0].burn_reason.find("WRONG_PROOF") != std::string::npos);
}

}  // namespace
}  // namespace keyline::injector

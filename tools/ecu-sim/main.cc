// keyline-ecu-sim: simulated SHE ECUs answering EcuLink requests (docs/ecu-sim.md).
//
//   keyline-ecu-sim --config ecu-sim.toml [--seed N] [--fault NAME=P ...]   serve until SIGTERM
//   keyline-ecu-sim status --config ecu-sim.toml [--json]                  ECUs and slots, no keys
//   keyline-ecu-sim check-config --config ecu-sim.toml                     read and check the file only
//   keyline-ecu-sim generate-key --out FILE --bytes 16|32                  a 0600 hex key file
//
// Exit status: 0 success, 1 runtime failure, 2 bad configuration or usage.
#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "keyline/broker/curve_keys.h"
#include "keyline/broker/peer_registry.h"
#include "keyline/broker/rpc.h"
#include "keyline/common/log.h"
#include "keyline/ecu_sim/ecu_simulator.h"
#include "keyline/hsm/she_store_seal.h"
#include "keyline/hsm/x509.h"

namespace {

using namespace keyline;
using namespace keyline::ecu_sim;

std::atomic<bool> stop_requested{false};
void OnSignal(int) { stop_requested.store(true); }

int Fail(int code, const std::string& message) {
  std::cerr << "keyline-ecu-sim: " << message << '\n';
  return code;
}

// "refuse=0.05" onto faults; false with a message when malformed.
bool ApplyFault(const std::string& text, EcuFaults& faults, std::string& error) {
  auto eq = text.find('=');
  std::string name = text.substr(0, eq);
  double* target = name == "refuse"        ? &faults.refuse
                   : name == "wrong_proof" ? &faults.wrong_proof
                   : name == "timeout"     ? &faults.timeout
                   : name == "power_loss"  ? &faults.power_loss
                                           : nullptr;
  if (eq == std::string::npos || target == nullptr) {
    error = "--fault " + text + ": expected refuse|wrong_proof|timeout|power_loss=P";
    return false;
  }
  try {
    size_t used = 0;
    double p = std::stod(text.substr(eq + 1), &used);
    if (used != text.size() - eq - 1 || !(p >= 0 && p <= 1)) throw std::out_of_range("p");
    *target = p;
  } catch (const std::exception&) {
    error = "--fault " + text + ": the probability must be a number within 0..1";
    return false;
  }
  return true;
}

int Serve(EcuSimConfig config) {
  LogOptions log{"ecu-sim", config.log_level, std::nullopt};
  if (!config.log_file.empty()) log.file = config.log_file;
  if (auto s = InitLogging(log); !s.ok()) return Fail(2, s.message());
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  auto keys = broker::CurveKeyPair::Load(config.curve_key_file);
  if (!keys.ok()) return Fail(2, keys.status().message());
  broker::PeerRegistry peers;
  for (const auto& client : config.clients) {
    auto key = broker::LoadCurvePublicKeyFile(client.curve_public_key_file);
    if (!key.ok()) return Fail(2, "[[client]] " + client.id + ": " + key.status().message());
    if (auto s = peers.Add(*key, client.id); !s.ok()) return Fail(2, s.message());
  }
  auto simulator = EcuSimulator::Open(config.simulator);
  if (!simulator.ok()) return Fail(1, simulator.status().message());
  std::shared_ptr<EcuSimulator> sim = std::move(simulator).value();
  broker::RpcServer::Options options;
  options.bind_endpoint = config.listen;
  options.keys = *keys;
  options.peers = &peers;
  options.max_frame_bytes = 4096;
  auto server = broker::RpcServer::Start(
      [sim](const std::string& peer, std::span<const uint8_t> request) {
        return sim->Handle(peer, request);
      },
      options);
  if (!server.ok()) return Fail(1, server.status().message());
  const auto& f = config.simulator.faults;
  spdlog::info("faults: refuse {} wrong_proof {} timeout {} power_loss {} (seed {})", f.refuse,
               f.wrong_proof, f.timeout, f.power_loss, config.simulator.seed);
  std::cout << "listening on " << (*server)->endpoint() << std::endl;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  while (!stop_requested.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  spdlog::info("stopping");
  server->reset();
  return 0;
}

// One line about a stored certificate: its subject and issuer CN, or that none is stored yet.
std::string CertificateSummary(const std::string& pem) {
  if (pem.empty()) return "key pair, no certificate yet";
  auto info = hsm::InspectCertificate(pem);
  if (!info.ok()) return "unreadable certificate: " + info.status().message();
  return "serialNumber=" + info->subject.serial_number + " CN=" + info->subject.common_name +
         ", issued by " + info->issuer.common_name + ", serial " + info->serial_hex;
}

int PrintStatus(const EcuSimConfig& config, bool json) {
  // The simulator writes its state file when it starts, before it listens: no file means it has
  // not started with this data dir, which a health check must not call healthy.
  if (!std::filesystem::exists(config.simulator.state_file)) {
    return Fail(1, config.simulator.state_file.string() +
                       ": no state file: the simulator has not started with this data dir yet");
  }
  auto rows = ReadEcuState(config.simulator.state_file, config.simulator.state_key_file);
  if (!rows.ok()) return Fail(1, rows.status().message());
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& row : *rows) {
      nlohmann::json slots = nlohmann::json::array();
      for (const auto& s : row.slots) {
        if (!s.loaded) continue;
        slots.push_back({{"slot", s.slot}, {"counter", s.counter}, {"flags", s.flags}});
      }
      nlohmann::json certificates = nlohmann::json::object();
      for (const auto& [name, pem] : row.certificates) certificates[name] = CertificateSummary(pem);
      out.push_back({{"ecu_uid", UidHex(row.uid)}, {"slots", slots}, {"certificates", certificates}});
    }
    std::cout << nlohmann::json{{"ecus", out}}.dump() << '\n';
    return 0;
  }
  std::cout << rows->size() << " ECUs\n";
  for (const auto& row : *rows) {
    std::cout << UidHex(row.uid) << '\n';
    for (const auto& s : row.slots) {
      if (!s.loaded) continue;
      std::cout << "  slot " << int(s.slot) << "  counter " << s.counter << "  flags 0x" << std::hex
                << int(s.flags) << std::dec << '\n';
    }
    for (const auto& [name, pem] : row.certificates) {
      std::cout << "  certificate slot " << name << "  " << CertificateSummary(pem) << '\n';
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyline-ecu-sim: simulated SHE ECUs answering EcuLink requests"};
  std::string config_path;
  uint64_t seed = 0;
  std::vector<std::string> fault_overrides;
  app.add_option("--config", config_path, "ecu-sim.toml");
  auto* seed_option = app.add_option("--seed", seed, "fault seed for this run ([faults] seed)");
  app.add_option("--fault", fault_overrides, "NAME=P for this run, e.g. refuse=0.05");
  auto* status = app.add_subcommand("status", "list ECUs and their slots (never keys)");
  std::string status_config;
  bool json = false;
  status->add_option("--config", status_config, "ecu-sim.toml")->required();
  status->add_flag("--json", json, "one JSON object");
  auto* check = app.add_subcommand("check-config", "read and check the configuration only");
  std::string check_config;
  check->add_option("--config", check_config, "ecu-sim.toml")->required();
  auto* generate = app.add_subcommand("generate-key", "write a new random 0600 hex key file");
  std::string out;
  size_t bytes = 0;
  generate->add_option("--out", out, "file to create (never overwritten)")->required();
  generate->add_option("--bytes", bytes, "16 (transport key) or 32 (state key)")
      ->required()
      ->check(CLI::IsMember({16, 32}));
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);

  if (generate->parsed()) {
    auto s = keyline::hsm::WriteRandomKeyFile(out, bytes);
    return s.ok() ? 0 : Fail(1, s.message());
  }
  if (status->parsed()) config_path = status_config;
  if (check->parsed()) config_path = check_config;
  if (config_path.empty()) return Fail(2, "--config is required");
  auto config = LoadEcuSimConfig(config_path);
  if (!config.ok()) return Fail(2, config.status().message());
  if (check->parsed()) {
    std::cout << config_path << ": ok (listen " << config->listen << ", " << config->clients.size()
              << " client(s))\n";
    return 0;
  }
  if (status->parsed()) return PrintStatus(*config, json);
  if (*seed_option) config->simulator.seed = seed;
  for (const auto& text : fault_overrides) {
    std::string error;
    if (!ApplyFault(text, config->simulator.faults, error)) return Fail(2, error);
  }
  if (auto s = ValidateFaults(config->simulator.faults); !s.ok()) return Fail(2, s.message());
  return Serve(std::move(config).value());
}

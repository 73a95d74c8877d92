// keyline-ecu-sim's library: many simulated SHE ECUs in one process, answering EcuLink
// requests (schemas/ecu_link.fbs), with injected faults and a sealed, crash-safe state file.
//
// Each ECU is an hsm::SheKeyStore created on first contact in factory state: MASTER_ECU_KEY =
// the product's transport key (counter 0, no flags). Every change is appended to the state
// file as one sealed record (hsm::SheStoreSealer) and fdatasync'ed before the answer goes out;
// opening the file replays it (last record per UID wins), drops a torn last record (a SIGKILL
// mid-append) and rewrites it compacted (temp file + fsync + rename). No key in clear on disk.
//
// Certificate slots (GENERATE_KEY_PAIR, STORE_CERTIFICATE): each ECU's P-256 key pairs live in
// a software custody standing in for the ECU's HSM, kept wrapped in `<state file>.identities`
// (src/ecu_identities.h).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "keyline/common/status.h"

namespace keyline::ecu_sim {

using EcuUid = std::array<uint8_t, 15>;

// Probabilities, each 0..1, of the faults a LOAD_KEY can meet; their sum must not exceed 1.
// One uniform draw per LOAD_KEY picks at most one fault.
struct EcuFaults {
  double refuse = 0;       // answer GENERAL_ERROR without touching the store. Default 0.
  double wrong_proof = 0;  // store the key, answer with a corrupted M5. Default 0.
  double timeout = 0;      // the command is lost: nothing stored, no answer. Default 0.
  double power_loss = 0;   // store the key (durably), then no answer. Default 0.
};
[[nodiscard]] Status ValidateFaults(const EcuFaults& faults);

struct EcuSimulatorOptions {
  // The state file (sealed records); created when absent. Required.
  std::filesystem::path state_file;
  // 0600 file, 64 hex digits: the key sealing the state file. Required.
  std::filesystem::path state_key_file;
  // 0600 file, 32 hex digits: the factory MASTER_ECU_KEY of every new ECU. Required.
  std::filesystem::path transport_key_file;
  EcuFaults faults;
  // Seeds the fault draws: the same seed and request order give the same faults. Default 1.
  uint64_t seed = 1;
  // The master key of the ECUs' identity keys (a software custody key file), created when
  // absent. Default: empty, meaning "ecu-identity.key" beside the state file.
  std::filesystem::path identity_key_file;
};

struct EcuSlotRow {
  uint8_t slot = 0;
  bool loaded = false;
  uint32_t counter = 0;
  uint8_t flags = 0;
};

struct EcuRow {
  EcuUid uid{};
  std::vector<EcuSlotRow> slots;  // all 16; none for an ECU known only by a certificate slot
  // Certificate slot name -> the certificate it holds (PEM; "" when only the key pair exists).
  std::map<std::string, std::string> certificates;
};

struct EcuSimCounters {
  uint64_t loads = 0;            // LOAD_KEY requests that reached an ECU
  uint64_t loaded = 0;           // of which stored a key
  uint64_t she_refusals = 0;     // answered with a SHE error code
  uint64_t faults_refuse = 0;
  uint64_t faults_wrong_proof = 0;
  uint64_t faults_timeout = 0;
  uint64_t faults_power_loss = 0;
  uint64_t malformed = 0;        // requests refused before reaching an ECU
  uint64_t csrs = 0;             // GENERATE_KEY_PAIR answered with a CSR
  uint64_t certificates = 0;     // STORE_CERTIFICATE answered with a confirmation
};

class EcuSimulator {
 public:
  static StatusOr<std::unique_ptr<EcuSimulator>> Open(const EcuSimulatorOptions& options);
  ~EcuSimulator();

  // The broker::RpcHandler: one EcuRequest in, one EcuReply out, or an error Status naming
  // what was wrong with the request. Thread-safe.
  StatusOr<std::vector<uint8_t>> Handle(const std::string& peer, std::span<const uint8_t> request);

  void SetFaults(const EcuFaults& faults, uint64_t seed);
  std::vector<EcuRow> Ecus() const;
  EcuSimCounters counters() const;

 private:
  struct Impl;
  explicit EcuSimulator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads a state file without changing it (a running simulator may be appending): every ECU with
// its slots. A torn last record is skipped.
[[nodiscard]] StatusOr<std::vector<EcuRow>> ReadEcuState(const std::filesystem::path& state_file,
                                                         const std::filesystem::path& state_key_file);

// keyline-ecu-sim's TOML configuration (docs/ecu-sim.md).
struct EcuSimClient {
  std::string id;                            // names the injector in logs
  std::filesystem::path curve_public_key_file;
};

struct EcuSimConfig {
  std::filesystem::path data_dir;  // holds ecu-sim.state
  std::string log_level = "info";
  std::filesystem::path log_file;  // empty: stderr only
  std::string listen;              // [ecu] listen
  std::filesystem::path curve_key_file;
  std::vector<EcuSimClient> clients;
  EcuSimulatorOptions simulator;   // state_file = data_dir / "ecu-sim.state"
};

[[nodiscard]] StatusOr<EcuSimConfig> LoadEcuSimConfig(const std::filesystem::path& path);

std::string UidHex(const EcuUid& uid);

}  // namespace keyline::ecu_sim

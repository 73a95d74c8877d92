// A plant on loopback for tests: the real PKS (in process or as a child process), a stand-in
// KMS and stations that are real broker endpoints (RocksDB + CurveZMQ links), and an "ECU"
// that answers loads with the real SHE proof computed from the keys the KMS shipped.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "keyline/broker/curve_keys.h"
#include "keyline/broker/database.h"
#include "keyline/broker/link.h"
#include "keyline/broker/message_store.h"
#include "keyline/broker/peer_registry.h"
#include "keyline/hsm/key_custody.h"
#include "keyline/hsm/she.h"
#include "keyline/pks/pks_config.h"
#include "keyline/pks/pks_service.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::wire {
enum class MessageType : uint16_t;
enum class PackageErrorCode : uint8_t;
enum class RecordOutcome : uint8_t;
}  // namespace keyline::wire

namespace keyline::pks::testing {

using namespace std::chrono_literals;

// One real broker endpoint of the test (the KMS or a station): what its handler received.
class TestPeer {
 public:
  struct Received {
    std::string peer;
    std::string stream;
    uint64_t sequence = 0;
    wire::MessageType type{};
    std::vector<uint8_t> payload;
  };

  TestPeer(std::filesystem::path dir, std::string name);
  virtual ~TestPeer();

  broker::DeliveryHandler Handler();
  void Send(const broker::QueueId& to, wire::MessageType type, std::span<const uint8_t> payload);
  // Waits until `ready` holds over what was received; false on time-out.
  bool WaitFor(const std::function<bool(const std::vector<Received>&)>& ready,
               std::chrono::milliseconds timeout = 10s);
  std::vector<Received> Of(wire::MessageType type);
  broker::MessageStore* store() { return store_.get(); }
  const std::string& name() const { return name_; }

 protected:
  std::filesystem::path dir_;
  std::string name_;
  std::unique_ptr<broker::Database> database_;
  std::unique_ptr<broker::MessageStore> store_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Received> received_;
};

struct PackageView {
  std::string request_id;
  std::string package_id;
  std::string key_set_id;
  int error = 0;  // wire::PackageErrorCode as a number; 0: none
  std::string message;
  int64_t deadline_us = 0;
  struct Slot {
    uint8_t slot = 0, auth_slot = 0, flags = 0;
    uint32_t counter = 0;
    std::vector<uint8_t> m1, m2, m3;
    std::vector<uint8_t> proof_digest;
  };
  std::vector<Slot> slots;
  std::string certificate_slot;                // empty: the package has no certificate slot
  std::vector<uint8_t> certificate_challenge;  // the CSR's challenge
};

// A CertificateIssued as the station received it.
struct IssuedView {
  int error = 0;  // wire::PackageErrorCode as a number; 0: issued
  std::string message;
  std::string certificate;
  std::string chain;
  std::vector<uint8_t> confirm_challenge;
};

// What the station reports of the certificate slot in its InjectionResult.
struct CertificateReport {
  std::string slot = "identity";
  int ecu_error = 0;  // wire::EcuError as a number
  std::vector<uint8_t> confirmation;
  std::string detail;
};

struct RecordView {
  uint64_t record_sequence = 0;
  std::string plant, station, product, key_set_id, burn_reason;
  hsm::SheUid ecu_uid{};
  bool injected = false;
  bool signature_valid = false;
  size_t slots_with_proof = 0;
  std::string certificate;  // empty: the record carries no certificate
  std::string certificate_chain;
  std::vector<uint8_t> confirm_challenge;
  std::vector<uint8_t> confirmation;
};

struct ProductSpec {
  std::string name = "acme-bcm";
  uint32_t min_stock = 0;
  uint32_t target_stock = 0;
  uint32_t reservation_timeout_s = 60;
  // With a certificate slot "identity" (O=Acme, OU=BCM, CN "{product} {uid}", clientAuth).
  bool certificate_slot = false;
};

// The standard layout of the tests: MASTER_ECU_KEY (auth: transport key), KEY_1 and KEY_2
// (auth: the new MASTER_ECU_KEY).
inline constexpr uint8_t kLayout[3] = {1, 4, 5};

class PlantHarness {
 public:
  explicit PlantHarness(std::vector<std::string> stations = {"line1-eol1"});
  ~PlantHarness();

  const std::filesystem::path& dir() const { return dir_.path(); }
  const PksConfig& config() const { return config_; }
  std::filesystem::path config_path() const { return dir_.path() / "pks.toml"; }

  // --- the PKS, in process (or as a child process: see pks_kill_test) ---
  // Gives the PKS a fixed free port for stations, so that a restarted process keeps it.
  void FixStationPort();
  // [stock] request_retry_s for the next StartPks (default 600).
  void SetStockRequestRetry(int seconds);
  void StartPks();
  void StopPks();
  PksService& pks() { return *pks_; }

  // --- the KMS stand-in ---
  void StartKms();
  void StopKms();
  TestPeer& kms() { return *kms_; }
  struct ConfigOptions {
    std::string plant = "plant-a";  // another plant's id: a configuration the PKS must refuse
    uint32_t interval_s = 0;        // 0: continuous contact; else scheduled contact
    struct IssuingCa {
      std::string oem, key_name, certificate, oem_ca_certificate;
      uint32_t budget_min = 0, budget_target = 0;  // 0 / 0: the plant never asks for budget
    };
    std::vector<IssuingCa> issuing_cas;
  };
  // Sends the plant's configuration (version increases each call).
  void Configure(const std::vector<ProductSpec>& products, ConfigOptions options);
  void Configure(const std::vector<ProductSpec>& products) { Configure(products, ConfigOptions{}); }
  // Ships key sets sealed for another plant's HSM key.
  void ShipSealedForAnotherPlant(const std::string& product, size_t count);
  // Generates `count` key sets for `product`, seals them for the plant and ships them.
  // Returns their ids.
  std::vector<std::string> Ship(const std::string& product, size_t count,
                                const std::string& request_id = "", std::string batch_id = "",
                                const hsm::PublicKey* seal_for = nullptr);
  void SendVerificationRequest(const std::string& barrier_id);
  // Has the PKS make its issuing CA for OEM "acme" (PlantCaRequest), signs its CSR with a new
  // test OEM root, configures `products` with that CA (and `budget_min` / `budget_target`)
  // and grants `grant` certificates. Returns the root's PEM.
  std::string InstallIssuingCa(const std::vector<ProductSpec>& products, uint32_t grant = 1000,
                               uint32_t budget_min = 0, uint32_t budget_target = 0);
  // Sends a CertificateBudgetGrant of `count` for OEM "acme" (or `plant` other than this one's).
  void GrantBudget(const std::string& grant_id, uint32_t count, const std::string& request_id = "",
                   const std::string& plant = "");
  std::vector<RecordView> Records();
  size_t shipped() {
    std::lock_guard lock(keys_mu_);
    return keys_.size();
  }

  // --- stations and the ECU ---
  // What an injector agent needs to play a station: its key pair (registered at the PKS by
  // Configure), where the PKS listens and its public key, and the ECUs' factory key (hex file).
  const broker::CurveKeyPair& station_keys(const std::string& station) const {
    return station_curves_.at(station);
  }
  const std::string& station_endpoint() const { return station_endpoint_; }
  const broker::CurvePublicKey& pks_public_key() const { return pks_curve_.public_key(); }
  std::filesystem::path transport_key_file() const { return dir() / "transport.hex"; }
  void StartStation(const std::string& station);
  void StopStation(const std::string& station);
  TestPeer& station(const std::string& name);
  // Sends a KeyPackageRequest and waits for the answer.
  std::optional<PackageView> Request(const std::string& station, const std::string& product,
                                     const hsm::SheUid& uid, std::string claimed_station = "",
                                     std::chrono::milliseconds timeout = 10s);
  // Sends a KeyPackageRequest without waiting.
  std::string SendRequest(const std::string& station, const std::string& product,
                          std::span<const uint8_t> uid, std::string claimed_station = "");
  // Loads the package into a simulated ECU (the true M4/M5 from the shipped keys) and reports
  // it; `corrupt_slot` >= 0 reports a wrong M5 for that slot index.
  void Report(const std::string& station, const PackageView& package, const hsm::SheUid& uid,
              int corrupt_slot = -1, const CertificateReport* certificate = nullptr);
  // Sends a CertificateRequest for `package` and waits for the CertificateIssued.
  std::optional<IssuedView> RequestCertificate(const std::string& station, const PackageView& package,
                                               const hsm::SheUid& uid, const std::string& csr,
                                               std::string slot = "identity");
  // Report with the certificate slot's outcome too.
  void Report(const std::string& station, const PackageView& package, const hsm::SheUid& uid,
              const CertificateReport& certificate);
  // Whether the package's M1..M3 are what the shipped keys and the transport key give.
  bool PackageIsCorrect(const PackageView& package, const hsm::SheUid& uid);

  // Every KeyPackage the station has received, in order.
  std::vector<PackageView> PackagesOf(const std::string& station);

  static hsm::SheUid Uid(uint64_t n);

 private:
  void WriteConfig();

  keyline::testing::TempDir dir_;
  PksConfig config_;
  std::unique_ptr<PksService> pks_;
  broker::CurveKeyPair pks_curve_;
  broker::CurveKeyPair kms_curve_;
  std::map<std::string, broker::CurveKeyPair> station_curves_;
  std::string kms_endpoint_;
  std::string station_endpoint_;  // empty until known
  int stock_request_retry_s_ = 600;
  broker::PeerRegistry kms_registry_;
  std::unique_ptr<TestPeer> kms_;
  std::unique_ptr<broker::LinkServer> kms_server_;
  std::map<std::string, std::unique_ptr<TestPeer>> stations_;
  std::map<std::string, std::unique_ptr<broker::LinkClient>> station_clients_;
  // The KMS side's custody: it generated the keys, so the test can play the ECU and the OEM.
  std::unique_ptr<hsm::KeyCustody> oem_;
  hsm::KeyHandle transport_;
  hsm::PublicKey plant_wrap_key_;
  hsm::PublicKey plant_signing_key_;
  std::mutex keys_mu_;  // Ship and Report may run on different threads
  std::map<std::string, std::vector<hsm::KeyHandle>> keys_;  // key set id -> keys in kLayout order
  std::map<std::string, std::string> product_of_;
  uint64_t config_version_ = 0;
  uint64_t batch_counter_ = 0;
  uint64_t request_counter_ = 0;
  uint64_t ca_counter_ = 0;
};

}  // namespace keyline::pks::testing

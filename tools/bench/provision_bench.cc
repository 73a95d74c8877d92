// keyline-bench provision: how many ECUs a plant's PKS provisions per second.
//
// A real PKS (in this process, software HSM, its own RocksDB) holds --stock key sets shipped
// over a real CurveZMQ link by a stand-in KMS. C simulated injectors, each with its own durable
// outbox (RocksDB) and CurveZMQ link, provision ECUs one after another: KeyPackageRequest ->
// KeyPackage, load the three slots into a simulated SHE key store (the ECU's own CMD_LOAD_KEY,
// hsm::SheKeyStore), InjectionResult -> acknowledged once the PKS has durably recorded
// INJECTED and queued the signed record for the KMS. Figures per concurrency: ECUs/s and
// p50/p99/p999 of request->package and result->ack.
//
// --certificate: the product also has a certificate slot. After the SHE slots each ECU makes a
// P-256 key pair (its own software custody), sends its CSR (CertificateRequest), the PKS's
// issuing CA signs, and the ECU's confirmation goes into the result. The ceiling printed with
// it is the raw ECDSA P-256 sign rate of the PKS's backend (software custody), measured in the
// same run, and the rate of whole certificates that backend issues.
//
// The injectors' own stores live in --injector-dir (default /dev/shm): on a line every
// injector is a separate machine with its own disk, and C injectors fsyncing on this one disk
// would measure the disk's queue, not the PKS. The PKS's own writes are synced on the real
// disk (the temp directory), as in production.
#include <linux/magic.h>
#include <sys/vfs.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <flatbuffers/flatbuffers.h>
#include <nlohmann/json.hpp>

#include "bench.h"
#include "keyline/broker/curve_keys.h"
#include "keyline/broker/database.h"
#include "keyline/broker/link.h"
#include "keyline/broker/message_store.h"
#include "keyline/broker/peer_registry.h"
#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/common/thread_name.h"
#include "keyline/hsm/she_key_store.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/certificate_slot.h"
#include "keyline/pks/pks_config.h"
#include "keyline/pks/pks_service.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/kms_pks_generated.h"
#include "keyline/wire/pks_injector_generated.h"

namespace keyline::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kPlant[] = "bench-plant";
constexpr char kRequests[] = "requests";  // the stream of requests and results to the PKS
constexpr char kProduct[] = "bench-ecu";
constexpr char kTransportHex[] = "000102030405060708090a0b0c0d0e0f";
constexpr uint8_t kSlots[3] = {1, 4, 5};  // MASTER_ECU_KEY, KEY_1, KEY_2

struct ProvisionOptions {
  std::vector<int> concurrency;  // empty: 1, 8, 64
  uint64_t ecus = 5000;
  uint64_t stock = 100000;
  std::string injector_dir = "/dev/shm";
  bool certificate = false;
  bool json = false;
};

double Percentile(std::vector<uint32_t> values, double p) {
  if (values.empty()) return 0;
  size_t index = std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(index), values.end());
  return values[index] / 1000.0;
}

bool IsTmpfs(const std::filesystem::path& dir) {
  struct statfs info {};
  return ::statfs(dir.c_str(), &info) == 0 && info.f_type == TMPFS_MAGIC;
}

// One broker endpoint of the bench (the KMS stand-in, or an injector): its own RocksDB and
// outbox; deliveries go to `on_delivery`.
struct Endpoint {
  std::unique_ptr<broker::Database> database;
  std::unique_ptr<broker::MessageStore> store;
  // `on_tmpfs`: the simulated injectors' stores (--injector-dir, /dev/shm by default).
  static StatusOr<std::unique_ptr<Endpoint>> Open(const std::filesystem::path& dir,
                                                  const std::string& name, bool on_tmpfs) {
    auto endpoint = std::make_unique<Endpoint>();
    ASSIGN_OR_RETURN(endpoint->database,
                     broker::Database::Open({.path = dir, .preallocate_files = !on_tmpfs}));
    ASSIGN_OR_RETURN(endpoint->store, broker::MessageStore::Open(endpoint->database.get(), {.self = name}));
    return endpoint;
  }
};

// A simulated injector: sends a request, waits for its package, drives the ECU, reports.
class Injector {
 public:
  Injector(std::string station, broker::CurveKeyPair keys) : station_(std::move(station)), keys_(std::move(keys)) {}

  Status Start(const std::filesystem::path& dir, const std::string& pks_endpoint,
               const broker::CurvePublicKey& pks_key) {
    ASSIGN_OR_RETURN(endpoint_, Endpoint::Open(dir, station_, IsTmpfs(dir)));
    // Wakes Run once the PKS has acknowledged the result it waits for (not earlier: the
    // acknowledgement of a request arrives while Run waits for its package).
    ack_listener_ = endpoint_->store->AddAckListener([this](const broker::QueueId& queue, uint64_t through) {
      if (queue.peer != kPlant || queue.stream != kRequests) return;
      std::lock_guard lock(mu_);
      if (awaited_ack_ != 0 && through >= awaited_ack_) cv_.notify_all();
    });
    broker::LinkOptions link;
    ASSIGN_OR_RETURN(client_, broker::LinkClient::Start(
                                  endpoint_->store.get(),
                                  [this](const broker::Delivery& d, broker::WriteContext&) { return OnPackage(d); },
                                  {.server_endpoint = pks_endpoint,
                                   .server_key = pks_key,
                                   .server_name = kPlant,
                                   .keys = keys_,
                                   .link = link}));
    return Status::Ok();
  }

  void Stop() {
    client_.reset();
    if (endpoint_) endpoint_->store->RemoveAckListener(ack_listener_);
    endpoint_.reset();
  }

  // Provisions ECUs first..first+count-1; records latencies in microseconds.
  Status Run(uint64_t first, uint64_t count, std::vector<uint32_t>& request_us,
             std::vector<uint32_t>& result_us) {
    for (uint64_t n = first; n < first + count; ++n) {
      hsm::SheUid uid{};
      uid[0] = 0xBE;
      for (int i = 0; i < 8; ++i) uid[14 - i] = static_cast<uint8_t>(n >> (8 * i));
      std::string request_id = station_ + "-" + std::to_string(n);

      auto t0 = Clock::now();
      flatbuffers::FlatBufferBuilder fbb(256);
      fbb.Finish(wire::CreateKeyPackageRequest(fbb, fbb.CreateString(request_id),
                                               fbb.CreateString(station_), fbb.CreateString(kProduct),
                                               schemas::CreateBytes(fbb, uid)));
      RETURN_IF_ERROR(Send(wire::MessageType::KeyPackageRequest, schemas::FinishedBytes(fbb)).status());
      std::vector<uint8_t> package_bytes;
      {
        std::unique_lock lock(mu_);
        if (!cv_.wait_for(lock, 30s, [&] { return packages_.count(request_id) != 0; })) {
          return DeadlineExceededError("no KeyPackage for " + request_id + " within 30 s");
        }
        package_bytes = std::move(packages_[request_id]);
        packages_.erase(request_id);
      }
      auto t1 = Clock::now();
      request_us.push_back(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count()));

      ASSIGN_OR_RETURN(const wire::KeyPackage* package, schemas::DecodeMessage<wire::KeyPackage>(package_bytes));
      if (package->error()) {
        return FailedPreconditionError("package refused: " + std::string(schemas::Text(package->error()->message())));
      }
      // The ECU: a blank SHE key store holding the transport key as its MASTER_ECU_KEY.
      hsm::SheKeyStore ecu(uid);
      RETURN_IF_ERROR(ecu.Provision(hsm::kSheSlotMasterEcuKey, kTransportHex, 0, 0));
      flatbuffers::FlatBufferBuilder result(512);
      std::vector<flatbuffers::Offset<wire::ResultSlot>> slots;
      for (const wire::PackageSlot* slot : *package->slots()) {
        RETURN_IF_ERROR(schemas::CheckFixedBytes(slot->m1(), 16, "m1"));
        RETURN_IF_ERROR(schemas::CheckFixedBytes(slot->m2(), 32, "m2"));
        RETURN_IF_ERROR(schemas::CheckFixedBytes(slot->m3(), 16, "m3"));
        ASSIGN_OR_RETURN(hsm::SheLoadOutcome outcome,
                         ecu.LoadKey(std::span<const uint8_t, 16>(slot->m1()->data(), 16),
                                     std::span<const uint8_t, 32>(slot->m2()->data(), 32),
                                     std::span<const uint8_t, 16>(slot->m3()->data(), 16)));
        if (outcome.error != hsm::SheLoadError::kNone) {
          return InternalError("ECU refused slot " + std::to_string(slot->slot()) + ": " +
                               std::string(hsm::SheLoadErrorName(outcome.error)));
        }
        slots.push_back(wire::CreateResultSlot(result, slot->slot(), schemas::CreateBytes(result, outcome.proof.m4),
                                               schemas::CreateBytes(result, outcome.proof.m5),
                                               wire::EcuError::NONE, 1));
      }
      flatbuffers::Offset<wire::CertificateResult> certificate = 0;
      if (package->certificate() != nullptr) {
        ASSIGN_OR_RETURN(std::vector<uint8_t> confirmation, Certify(*package, uid));
        certificate = wire::CreateCertificateResult(result, result.CreateString(schemas::Text(package->certificate()->slot())),
                                                    wire::EcuError::NONE, schemas::CreateBytes(result, confirmation));
      }
      result.Finish(wire::CreateInjectionResult(result, result.CreateString(schemas::Text(package->package_id())),
                                                schemas::CreateBytes(result, uid), result.CreateVector(slots), 1, 0,
                                                certificate));
      auto t2 = Clock::now();
      ASSIGN_OR_RETURN(uint64_t sequence, Send(wire::MessageType::InjectionResult, schemas::FinishedBytes(result)));
      // Acknowledged = the PKS applied the result durably (INJECTED + record in one write).
      {
        std::unique_lock lock(mu_);
        awaited_ack_ = sequence;
        const bool acked = cv_.wait_for(lock, 30s, [&] { return endpoint_->store->AckedThrough({kPlant, kRequests}) >= sequence; });
        awaited_ack_ = 0;
        if (!acked) {
          return DeadlineExceededError("result not acknowledged within 30 s");
        }
      }
      auto t3 = Clock::now();
      result_us.push_back(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(t3 - t2).count()));
    }
    return Status::Ok();
  }

 private:
  // The ECU's side of a certificate slot: a key pair made in its own custody, a CSR over the
  // package's challenge, the PKS's certificate, and the signed confirmation (returned).
  StatusOr<std::vector<uint8_t>> Certify(const wire::KeyPackage& package, const hsm::SheUid& uid) {
    if (!ecu_custody_) {
      ASSIGN_OR_RETURN(ecu_custody_, hsm::CreateSoftwareCustody({}));
    }
    ASSIGN_OR_RETURN(hsm::KeyHandle key, ecu_custody_->GenerateKey(hsm::KeyKind::kEcdsaP256));
    hsm::ScopedKey scoped(ecu_custody_.get(), key);
    hsm::CertificateSubject subject;
    subject.serial_number = ToHex(uid);
    ASSIGN_OR_RETURN(std::string csr, hsm::MakeCsr(*ecu_custody_, key, subject,
                                                    schemas::Bytes(package.certificate()->challenge())));
    const std::string package_id(schemas::Text(package.package_id()));
    flatbuffers::FlatBufferBuilder fbb(1024);
    fbb.Finish(wire::CreateCertificateRequest(fbb, fbb.CreateString(package_id), schemas::CreateBytes(fbb, uid),
                                              fbb.CreateString(schemas::Text(package.certificate()->slot())),
                                              fbb.CreateString(csr)));
    RETURN_IF_ERROR(Send(wire::MessageType::CertificateRequest, schemas::FinishedBytes(fbb)).status());
    std::vector<uint8_t> issued_bytes;
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait_for(lock, 30s, [&] { return certificates_.count(package_id) != 0; })) {
        return DeadlineExceededError("no certificate for " + package_id + " within 30 s");
      }
      issued_bytes = std::move(certificates_[package_id]);
      certificates_.erase(package_id);
    }
    ASSIGN_OR_RETURN(const wire::CertificateIssued* issued, schemas::DecodeMessage<wire::CertificateIssued>(issued_bytes));
    if (issued->error()) {
      return FailedPreconditionError("certificate refused: " + std::string(schemas::Text(issued->error()->message())));
    }
    return ecu_custody_->SignEcdsaSha256(
        key, hsm::CertificateConfirmationMessage(uid, schemas::Bytes(issued->confirm_challenge())));
  }

  StatusOr<uint64_t> Send(wire::MessageType type, std::span<const uint8_t> payload) {
    uint64_t sequence = 0;
    RETURN_IF_ERROR(endpoint_->store->Commit([&](broker::WriteContext& write) -> Status {
      ASSIGN_OR_RETURN(sequence, write.Send({kPlant, kRequests}, type, payload));
      return Status::Ok();
    }));
    return sequence;
  }

  Status OnPackage(const broker::Delivery& delivery) {
    if (delivery.type == wire::MessageType::CertificateIssued) {
      ASSIGN_OR_RETURN(const wire::CertificateIssued* issued,
                       schemas::DecodeMessage<wire::CertificateIssued>(delivery.payload));
      {
        std::lock_guard lock(mu_);
        certificates_[std::string(schemas::Text(issued->package_id()))] =
            std::vector<uint8_t>(delivery.payload.begin(), delivery.payload.end());
      }
      cv_.notify_all();
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(const wire::KeyPackage* package, schemas::DecodeMessage<wire::KeyPackage>(delivery.payload));
    {
      std::lock_guard lock(mu_);
      packages_[std::string(schemas::Text(package->request_id()))] =
          std::vector<uint8_t>(delivery.payload.begin(), delivery.payload.end());
    }
    cv_.notify_all();
    return Status::Ok();
  }

  std::string station_;
  broker::CurveKeyPair keys_;
  std::unique_ptr<Endpoint> endpoint_;
  std::unique_ptr<broker::LinkClient> client_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<uint8_t>> packages_;
  std::map<std::string, std::vector<uint8_t>> certificates_;  // package id -> CertificateIssued
  std::unique_ptr<hsm::KeyCustody> ecu_custody_;               // the simulated ECUs' key store
  uint64_t awaited_ack_ = 0;  // the result sequence Run waits to see acknowledged (0: none)
  uint64_t ack_listener_ = 0;
};

// The plant: a PKS, a stand-in KMS that configured it and shipped its stock.
class BenchPlant {
 public:
  Status Setup(const std::filesystem::path& dir, const ProvisionOptions& options, int max_stations) {
    dir_ = dir;
    certificate_ = options.certificate;
    RETURN_IF_ERROR(hsm::CreateMasterKeyFile(dir / "pks-hsm.key", {}));
    ASSIGN_OR_RETURN(pks_curve_, broker::CurveKeyPair::Generate());
    RETURN_IF_ERROR(pks_curve_.Save(dir / "pks.curve"));
    ASSIGN_OR_RETURN(kms_curve_, broker::CurveKeyPair::Generate());
    std::ofstream(dir / "kms.pub") << "public = " << broker::CurvePublicKeyToZ85(kms_curve_.public_key()) << "\n";
    for (int i = 0; i < max_stations; ++i) {
      ASSIGN_OR_RETURN(broker::CurveKeyPair keys, broker::CurveKeyPair::Generate());
      stations_.emplace_back("station-" + std::to_string(i), keys);
    }
    // The KMS stand-in.
    RETURN_IF_ERROR(kms_registry_.Add(pks_curve_.public_key(), kPlant));
    ASSIGN_OR_RETURN(kms_, Endpoint::Open(dir / "kms", "kms", false));
    ASSIGN_OR_RETURN(kms_server_, broker::LinkServer::Start(
                                      kms_->store.get(),
                                      [this](const broker::Delivery& d, broker::WriteContext&) {
                                        if (d.type == wire::MessageType::PlantCaCsr) {
                                          std::lock_guard lock(csr_mu_);
                                          csr_.assign(d.payload.begin(), d.payload.end());
                                        }
                                        return Status::Ok();
                                      },
                                      {.bind_endpoint = "tcp://127.0.0.1:0",
                                       .keys = kms_curve_,
                                       .peers = &kms_registry_}));
    {
      std::ofstream config(dir / "pks.toml");
      config << "data_dir = \"pks-data\"\n[log]\nlevel = \"warn\"\n[plant]\nid = \"" << kPlant
             << "\"\n[hsm]\nbackend = \"software\"\nmaster_key_file = \"pks-hsm.key\"\n"
             << "[kms]\nconnect = \"" << kms_server_->endpoint() << "\"\ncurve_public_key_file = \"kms.pub\"\n"
             << "[link]\nlisten = \"tcp://127.0.0.1:0\"\ncurve_key_file = \"pks.curve\"\n";
    }
    ASSIGN_OR_RETURN(config_, pks::LoadPksConfig(dir / "pks.toml"));
    {
      std::ofstream(dir / "transport.hex") << kTransportHex << "\n";
      ::chmod((dir / "transport.hex").c_str(), 0600);
    }
    RETURN_IF_ERROR(pks::ImportTransportKey(config_, "bench-transport", dir / "transport.hex"));
    ASSIGN_OR_RETURN(pks::PlantPublicKeys plant_keys, pks::ShowPlantKeys(config_));
    ASSIGN_OR_RETURN(std::vector<uint8_t> wrap, ParseHex(plant_keys.wrap_key_hex, "wrap key"));
    wrap_key_.kind = hsm::KeyKind::kX25519;
    std::copy(wrap.begin(), wrap.end(), wrap_key_.bytes.begin());
    ASSIGN_OR_RETURN(pks_, pks::PksService::Start(config_));

    RETURN_IF_ERROR(SendConfig(1, {}));
    if (certificate_) RETURN_IF_ERROR(InstallIssuingCa());
    RETURN_IF_ERROR(ShipStock(options.stock));
    auto deadline = Clock::now() + 600s;
    while (pks_->Snapshot().products.empty() || pks_->Snapshot().products[0].in_stock < options.stock) {
      if (Clock::now() > deadline) return DeadlineExceededError("the PKS did not take its stock in time");
      std::this_thread::sleep_for(50ms);
    }
    return Status::Ok();
  }

  void Stop() {
    pks_.reset();
    kms_server_.reset();
    kms_.reset();
  }

  pks::PksService& pks() { return *pks_; }
  const std::vector<std::pair<std::string, broker::CurveKeyPair>>& stations() const { return stations_; }
  const broker::CurvePublicKey& pks_key() const { return pks_curve_.public_key(); }

 private:
  struct IssuingCa {
    std::string key_name, certificate, root;
  };

  // The plant's issuing CA: its key made in the PKS's HSM (PlantCaRequest), the CSR signed by a
  // stand-in OEM root, installed by a second configuration.
  Status InstallIssuingCa() {
    const std::vector<uint8_t> challenge(32, 0x42);
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreatePlantCaRequestDirect(fbb, "bench-plant/bench-oem/1", "bench-oem", "plant-ca/bench-oem/1",
                                                "Bench OEM", kPlant, "bench issuing CA", &challenge));
    RETURN_IF_ERROR(kms_->store->Commit([&](broker::WriteContext& write) {
      return write.Send({kPlant, "control"}, wire::MessageType::PlantCaRequest, schemas::FinishedBytes(fbb)).status();
    }));
    std::vector<uint8_t> csr_bytes;
    for (auto deadline = Clock::now() + 30s; csr_bytes.empty(); std::this_thread::sleep_for(20ms)) {
      if (Clock::now() > deadline) return DeadlineExceededError("the PKS sent no CSR for its issuing CA");
      std::lock_guard lock(csr_mu_);
      csr_bytes = csr_;
    }
    ASSIGN_OR_RETURN(const wire::PlantCaCsr* csr, schemas::DecodeMessage<wire::PlantCaCsr>(csr_bytes));
    ASSIGN_OR_RETURN(hsm::CheckedCsr checked, hsm::CheckCsr(schemas::Text(csr->csr()), challenge));
    ASSIGN_OR_RETURN(std::unique_ptr<hsm::KeyCustody> oem, hsm::CreateSoftwareCustody({}));
    ASSIGN_OR_RETURN(hsm::KeyHandle root_key, oem->GenerateKey(hsm::KeyKind::kEcdsaP256));
    hsm::CertificateSubject root_subject;
    root_subject.common_name = "bench OEM root";
    IssuingCa ca;
    ca.key_name = "plant-ca/bench-oem/1";
    ASSIGN_OR_RETURN(ca.root, hsm::SelfSignCa(*oem, root_key, root_subject, hsm::ValidForDaysFromNow(3650)));
    ASSIGN_OR_RETURN(ca.certificate,
                     hsm::IssueCaCertificate(*oem, root_key, ca.root, checked, hsm::ValidForDaysFromNow(1825)));
    RETURN_IF_ERROR(SendConfig(2, {ca}));
    for (auto deadline = Clock::now() + 30s; pks_->Snapshot().issuing_cas.empty(); std::this_thread::sleep_for(20ms)) {
      if (Clock::now() > deadline) return DeadlineExceededError("the PKS did not install its issuing CA");
    }
    // An issuing budget beyond anything the run issues, as the KMS would grant it.
    flatbuffers::FlatBufferBuilder grant;
    grant.Finish(wire::CreateCertificateBudgetGrantDirect(grant, "", "bench-plant/bench-oem/1", kPlant, "bench-oem",
                                                          100'000'000));
    RETURN_IF_ERROR(kms_->store->Commit([&](broker::WriteContext& write) {
      return write.Send({kPlant, "control"}, wire::MessageType::CertificateBudgetGrant, schemas::FinishedBytes(grant))
          .status();
    }));
    for (auto deadline = Clock::now() + 30s;; std::this_thread::sleep_for(20ms)) {
      auto budgets = pks_->Snapshot().certificate_budgets;
      if (!budgets.empty() && budgets[0].granted > 0) break;
      if (Clock::now() > deadline) return DeadlineExceededError("the PKS did not apply its issuing budget");
    }
    return Status::Ok();
  }

  Status SendConfig(uint64_t version, const std::vector<IssuingCa>& cas) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::SlotLayout>> slots;
    for (uint8_t slot : kSlots) slots.push_back(wire::CreateSlotLayout(fbb, slot, 1, 1, 0));
    flatbuffers::Offset<wire::CertificateSlot> certificate = 0;
    if (certificate_) {
      schemas::CertificateSlotSpec spec;
      spec.name = "identity";
      spec.organization = "Bench OEM";
      spec.common_name = "{product} {uid}";
      spec.validity_days = 5475;
      spec.extended_key_usage = {"clientAuth"};
      certificate = schemas::CreateCertificateSlot(fbb, spec);
    }
    auto product = wire::CreateProduct(fbb, fbb.CreateString(kProduct), fbb.CreateString("bench-oem"),
                                       fbb.CreateVector(slots), wire::SheFlagLayout::SHE_CLASSIC,
                                       fbb.CreateString("bench-transport"), 0, 0, 600, certificate);
    std::vector<flatbuffers::Offset<wire::IssuingCa>> issuing_cas;
    for (const IssuingCa& ca : cas) {
      issuing_cas.push_back(wire::CreateIssuingCaDirect(fbb, "bench-oem", ca.key_name.c_str(), ca.certificate.c_str(),
                                                         ca.root.c_str()));
    }
    std::vector<flatbuffers::Offset<wire::Station>> stations;
    for (const auto& [id, keys] : stations_) {
      stations.push_back(wire::CreateStation(fbb, fbb.CreateString(id), schemas::CreateBytes(fbb, keys.public_key())));
    }
    std::vector<flatbuffers::Offset<wire::Product>> products{product};
    fbb.Finish(wire::CreateConfigUpdate(fbb, version, fbb.CreateString(kPlant), fbb.CreateVector(products),
                                        fbb.CreateVector(stations),
                                        wire::CreateSyncPolicy(fbb, wire::SyncMode::CONTINUOUS, 0),
                                        issuing_cas.empty() ? 0 : fbb.CreateVector(issuing_cas)));
    return kms_->store->Commit([&](broker::WriteContext& write) {
      return write.Send({kPlant, "control"}, wire::MessageType::ConfigUpdate, schemas::FinishedBytes(fbb)).status();
    });
  }

  // Key sets generated by a software custody standing in for the OEM and the KMS, each sealed
  // for the plant as docs/key-flow.md says, shipped in batches under the 1 MiB frame limit.
  Status ShipStock(uint64_t count) {
    ASSIGN_OR_RETURN(std::unique_ptr<hsm::KeyCustody> oem, hsm::CreateSoftwareCustody({}));
    constexpr uint64_t kPerBatch = 3000;
    for (uint64_t first = 0, batch = 0; first < count; first += kPerBatch, ++batch) {
      flatbuffers::FlatBufferBuilder fbb(1 << 20);
      std::vector<flatbuffers::Offset<wire::WrappedKeySet>> sets;
      for (uint64_t i = first; i < std::min(count, first + kPerBatch); ++i) {
        std::string id = "bench-ks-" + std::to_string(i);
        std::vector<hsm::KeyHandle> keys;
        for (size_t s = 0; s < std::size(kSlots); ++s) {
          ASSIGN_OR_RETURN(hsm::KeyHandle key, oem->GenerateKey(hsm::KeyKind::kAes128));
          keys.push_back(key);
        }
        ASSIGN_OR_RETURN(hsm::WrappedKeySet wrapped,
                         oem->WrapForPeer(keys, wrap_key_, "keyset/" + id + "/plant/" + kPlant));
        for (hsm::KeyHandle key : keys) RETURN_IF_ERROR(oem->DestroyKey(key));
        sets.push_back(wire::CreateWrappedKeySet(fbb, fbb.CreateString(id), schemas::CreateBytes(fbb, wrapped.bytes),
                                                 schemas::CreateBytes(fbb, std::span<const uint8_t>(kSlots, 3))));
      }
      fbb.Finish(wire::CreateStockBatch(fbb, fbb.CreateString(""), fbb.CreateString("bench-batch-" + std::to_string(batch)),
                                        fbb.CreateString(kPlant), fbb.CreateString(kProduct), fbb.CreateVector(sets)));
      RETURN_IF_ERROR(kms_->store->Commit([&](broker::WriteContext& write) {
        return write.Send({kPlant, "control"}, wire::MessageType::StockBatch, schemas::FinishedBytes(fbb)).status();
      }));
    }
    return Status::Ok();
  }

  std::filesystem::path dir_;
  bool certificate_ = false;
  std::mutex csr_mu_;
  std::vector<uint8_t> csr_;  // the PKS's PlantCaCsr, as the KMS stand-in received it
  pks::PksConfig config_;
  broker::CurveKeyPair pks_curve_;
  broker::CurveKeyPair kms_curve_;
  hsm::PublicKey wrap_key_;
  std::vector<std::pair<std::string, broker::CurveKeyPair>> stations_;
  broker::PeerRegistry kms_registry_;
  std::unique_ptr<Endpoint> kms_;
  std::unique_ptr<broker::LinkServer> kms_server_;
  std::unique_ptr<pks::PksService> pks_;
};

struct RunFigures {
  int concurrency = 0;
  uint64_t ecus = 0;
  double seconds = 0;
  std::vector<uint32_t> request_us;
  std::vector<uint32_t> result_us;
};

StatusOr<RunFigures> RunAt(BenchPlant& plant, const std::filesystem::path& injector_dir, int concurrency,
                           uint64_t ecus, uint64_t& next_ecu) {
  std::vector<std::unique_ptr<Injector>> injectors;
  for (int i = 0; i < concurrency; ++i) {
    const auto& [id, keys] = plant.stations().at(static_cast<size_t>(i));
    auto injector = std::make_unique<Injector>(id, keys);
    RETURN_IF_ERROR(injector->Start(injector_dir / id,  // an injector keeps its data dir across runs
                                    plant.pks().station_endpoint(), plant.pks_key()));
    injectors.push_back(std::move(injector));
  }
  // Connect everyone first: the handshake is not part of provisioning an ECU.
  auto deadline = Clock::now() + 30s;
  while (plant.pks().Snapshot().stations_connected.size() < static_cast<size_t>(concurrency)) {
    if (Clock::now() > deadline) return DeadlineExceededError("injectors did not connect");
    std::this_thread::sleep_for(20ms);
  }
  RunFigures figures;
  figures.concurrency = concurrency;
  std::vector<std::vector<uint32_t>> request_us(injectors.size());
  std::vector<std::vector<uint32_t>> result_us(injectors.size());
  std::vector<Status> results(injectors.size());
  uint64_t per = ecus / static_cast<uint64_t>(concurrency);
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < injectors.size(); ++i) {
    uint64_t first = next_ecu + i * per;
    threads.emplace_back([&, i, first] {
      NameThisThread("sim-injector");
      results[i] = injectors[i]->Run(first, per, request_us[i], result_us[i]);
    });
  }
  for (auto& t : threads) t.join();
  figures.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  next_ecu += per * injectors.size();
  for (auto& injector : injectors) injector->Stop();
  for (const Status& s : results) RETURN_IF_ERROR(s);
  for (size_t i = 0; i < injectors.size(); ++i) {
    figures.request_us.insert(figures.request_us.end(), request_us[i].begin(), request_us[i].end());
    figures.result_us.insert(figures.result_us.end(), result_us[i].begin(), result_us[i].end());
  }
  figures.ecus = figures.result_us.size();
  return figures;
}

// The ceiling of certificate issuing on this machine, on the PKS's backend (a software custody,
// one thread as the PKS issues on its commit thread): raw ECDSA P-256 signatures per second,
// and whole ECU certificates (IssueEndEntity) per second.
struct SignCeiling {
  double signs_per_s = 0;
  double certificates_per_s = 0;
};

StatusOr<SignCeiling> MeasureSignCeiling() {
  ASSIGN_OR_RETURN(std::unique_ptr<hsm::KeyCustody> custody, hsm::CreateSoftwareCustody({}));
  ASSIGN_OR_RETURN(hsm::KeyHandle key, custody->GenerateKey(hsm::KeyKind::kEcdsaP256));
  ASSIGN_OR_RETURN(hsm::KeyHandle ecu, custody->GenerateKey(hsm::KeyKind::kEcdsaP256));
  ASSIGN_OR_RETURN(std::vector<uint8_t> ecu_spki, custody->GetPublicKeyInfo(ecu));
  hsm::CertificateSubject subject;
  subject.common_name = "ceiling CA";
  ASSIGN_OR_RETURN(std::string ca, hsm::SelfSignCa(*custody, key, subject, hsm::ValidForDaysFromNow(30)));
  SignCeiling ceiling;
  const std::vector<uint8_t> message(64, 0x5a);
  auto start = Clock::now();
  uint64_t n = 0;
  for (; Clock::now() - start < 1s; ++n) RETURN_IF_ERROR(custody->SignEcdsaSha256(key, message).status());
  ceiling.signs_per_s = static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - start).count();
  hsm::EndEntityProfile profile;
  profile.subject.serial_number = "00";
  ASSIGN_OR_RETURN(std::unique_ptr<hsm::EndEntityIssuer> issuer, hsm::EndEntityIssuer::Prepare(*custody, key, ca));
  start = Clock::now();
  for (n = 0; Clock::now() - start < 1s; ++n) RETURN_IF_ERROR(issuer->Issue(ecu_spki, profile).status());
  ceiling.certificates_per_s = static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - start).count();
  return ceiling;
}

int RunProvisionBench(const ProvisionOptions& options) {
  std::vector<int> levels = options.concurrency.empty() ? std::vector<int>{1, 8, 64} : options.concurrency;
  int max_level = *std::max_element(levels.begin(), levels.end());
  uint64_t needed = options.ecus * levels.size();
  if (needed > options.stock) {
    std::cerr << "keyline-bench provision: --stock " << options.stock << " is less than the "
              << needed << " ECUs the runs need\n";
    return 2;
  }
  std::string pattern = (std::filesystem::temp_directory_path() / "keyline-bench-provision-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return 1;
  std::filesystem::path dir(pattern);
  if (!InitLogging({"bench", "error", std::nullopt}).ok()) return 1;

  std::string injector_pattern = (std::filesystem::path(options.injector_dir) / "keyline-bench-injectors-XXXXXX").string();
  if (mkdtemp(injector_pattern.data()) == nullptr) {
    std::cerr << "keyline-bench provision: cannot create a directory in " << options.injector_dir << '\n';
    std::filesystem::remove_all(dir);
    return 1;
  }
  std::filesystem::path injector_dir(injector_pattern);
  std::fprintf(stderr, "setting up a PKS with %llu key sets in stock (PKS data in %s, injectors' in %s) ...\n",
               static_cast<unsigned long long>(options.stock), dir.c_str(), injector_dir.c_str());
  auto setup_start = Clock::now();
  BenchPlant plant;
  Status set_up = plant.Setup(dir, options, max_level);
  if (!set_up.ok()) {
    std::cerr << "keyline-bench provision: " << set_up.ToString() << '\n';
    plant.Stop();
    std::filesystem::remove_all(dir);
    return 1;
  }
  std::fprintf(stderr, "stock in place after %.1f s\n",
               std::chrono::duration<double>(Clock::now() - setup_start).count());

  std::optional<SignCeiling> ceiling;
  if (options.certificate) {
    auto measured = MeasureSignCeiling();
    if (!measured.ok()) {
      std::cerr << "keyline-bench provision: " << measured.status().ToString() << '\n';
      plant.Stop();
      std::filesystem::remove_all(dir);
      return 1;
    }
    ceiling = *measured;
    if (!options.json) {
      std::printf("ceiling (same backend, one thread): %.0f ECDSA P-256 signatures/s, %.0f ECU certificates/s\n",
                  ceiling->signs_per_s, ceiling->certificates_per_s);
    }
  }

  nlohmann::json runs = nlohmann::json::array();
  uint64_t next_ecu = 1;
  int exit_code = 0;
  for (int level : levels) {
    auto figures = RunAt(plant, injector_dir, level, options.ecus, next_ecu);
    if (!figures.ok()) {
      std::cerr << "keyline-bench provision: C=" << level << ": " << figures.status().ToString() << '\n';
      exit_code = 1;
      break;
    }
    double per_s = static_cast<double>(figures->ecus) / figures->seconds;
    nlohmann::json run = {{"concurrency", level},
                          {"ecus", figures->ecus},
                          {"ecus_per_s", per_s},
                          {"p50_ms_request", Percentile(figures->request_us, 0.50)},
                          {"p99_ms_request", Percentile(figures->request_us, 0.99)},
                          {"p999_ms_request", Percentile(figures->request_us, 0.999)},
                          {"p50_ms_result", Percentile(figures->result_us, 0.50)},
                          {"p99_ms_result", Percentile(figures->result_us, 0.99)},
                          {"p999_ms_result", Percentile(figures->result_us, 0.999)}};
    if (ceiling) {
      run["certificate"] = true;
      run["sign_per_s"] = ceiling->signs_per_s;
      run["certificates_per_s_ceiling"] = ceiling->certificates_per_s;
      run["ratio_to_certificate_ceiling"] = per_s / ceiling->certificates_per_s;
    }
    runs.push_back(run);
    if (!options.json) {
      std::printf("C=%-3d %7llu ECUs  %8.0f ECUs/s   request->package p50 %6.2f p99 %6.2f p999 %6.2f ms"
                  "   result->ack p50 %6.2f p99 %6.2f p999 %6.2f ms\n",
                  level, static_cast<unsigned long long>(figures->ecus), per_s,
                  run["p50_ms_request"].get<double>(), run["p99_ms_request"].get<double>(),
                  run["p999_ms_request"].get<double>(), run["p50_ms_result"].get<double>(),
                  run["p99_ms_result"].get<double>(), run["p999_ms_result"].get<double>());
      std::fflush(stdout);
    }
  }
  auto snapshot = plant.pks().Snapshot();
  plant.Stop();
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(injector_dir);
  if (exit_code == 0 && !snapshot.products.empty()) {
    const auto& p = snapshot.products[0];
    if (!options.json) {
      std::printf("PKS after the runs: %llu injected, %llu burned, %llu reserved, %llu records written\n",
                  static_cast<unsigned long long>(p.injected), static_cast<unsigned long long>(p.burned),
                  static_cast<unsigned long long>(p.reserved),
                  static_cast<unsigned long long>(snapshot.records_written));
    }
    if (p.burned != 0 || p.injected != next_ecu - 1) exit_code = 1;  // every ECU must be INJECTED
  }
  if (options.json) {
    nlohmann::json out = runs.size() == 1 ? runs[0] : nlohmann::json{{"runs", runs}};
    if (runs.size() > 1) out.update(runs.back());
    std::cout << out.dump() << '\n';
  }
  return exit_code;
}

}  // namespace

void RegisterProvisionBench(CLI::App& root, BenchContext& context) {
  auto options = std::make_shared<ProvisionOptions>();
  CLI::App* command = root.add_subcommand(
      "provision", "ECUs/s of a PKS serving C simulated injectors (request + result, durable records)");
  command->add_option("--concurrency", options->concurrency, "injectors at once (repeatable; default 1, 8 and 64)")
      ->check(CLI::Range(1, 256));
  command->add_option("--ecus", options->ecus, "ECUs per concurrency level (default 5000)")->check(CLI::Range(1, 10000000));
  command->add_option("--stock", options->stock, "key sets in the PKS's stock (default 100000)")->check(CLI::Range(1, 10000000));
  command->add_option("--injector-dir", options->injector_dir,
                      "where the simulated injectors keep their stores (default /dev/shm)");
  command->add_flag("--certificate", options->certificate,
                    "the product also has a certificate slot: each ECU gets a key pair and a certificate");
  command->add_flag("--json", options->json, "print one JSON object as the last line");
  command->callback([options, &context] { context.exit_code = RunProvisionBench(*options); });
}

}  // namespace keyline::bench

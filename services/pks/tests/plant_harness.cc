#include "plant_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <flatbuffers/flatbuffers.h>

#include <fstream>
#include <thread>

#include "keyline/common/hex.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/certificate_slot.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/kms_pks_generated.h"
#include "keyline/wire/pks_injector_generated.h"
#include "keyline/wire/records_generated.h"

namespace keyline::pks::testing {
namespace {

constexpr char kTransportHex[] = "000102030405060708090a0b0c0d0e0f";
constexpr char kTransportRef[] = "acme-transport";
constexpr char kPlant[] = "plant-a";

std::vector<uint8_t> Copy(std::span<const uint8_t> bytes) { return {bytes.begin(), bytes.end()}; }

void WriteFile(const std::filesystem::path& path, const std::string& text, bool secret = false) {
  std::ofstream(path) << text;
  if (secret) ::chmod(path.c_str(), 0600);
}

broker::LinkOptions FastLink() {
  broker::LinkOptions options;
  options.heartbeat_interval_ms = 100;
  options.heartbeat_timeout_ms = 1000;
  return options;
}

}  // namespace

// --- TestPeer ---------------------------------------------------------------------------

TestPeer::TestPeer(std::filesystem::path dir, std::string name)
    : dir_(std::move(dir)), name_(std::move(name)) {
  auto database = broker::Database::Open({.path = dir_ / "db"});
  BOOST_REQUIRE_MESSAGE(database.ok(), database.status().ToString());
  database_ = std::move(database).value();
  auto store = broker::MessageStore::Open(database_.get(), {.self = name_});
  BOOST_REQUIRE_MESSAGE(store.ok(), store.status().ToString());
  store_ = std::move(store).value();
}

TestPeer::~TestPeer() {
  store_.reset();
  database_.reset();
}

broker::DeliveryHandler TestPeer::Handler() {
  return [this](const broker::Delivery& delivery, broker::WriteContext&) -> Status {
    {
      std::lock_guard lock(mu_);
      received_.push_back({delivery.peer, delivery.stream, delivery.sequence, delivery.type,
                           Copy(delivery.payload)});
    }
    cv_.notify_all();
    return Status::Ok();
  };
}

void TestPeer::Send(const broker::QueueId& to, wire::MessageType type,
                    std::span<const uint8_t> payload) {
  Status sent = store_->Commit(
      [&](broker::WriteContext& write) { return write.Send(to, type, payload).status(); });
  BOOST_REQUIRE_MESSAGE(sent.ok(), sent.ToString());
}

bool TestPeer::WaitFor(const std::function<bool(const std::vector<Received>&)>& ready,
                       std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return ready(received_); });
}

std::vector<TestPeer::Received> TestPeer::Of(wire::MessageType type) {
  std::lock_guard lock(mu_);
  std::vector<Received> out;
  for (const auto& r : received_) {
    if (r.type == type) out.push_back(r);
  }
  return out;
}

// --- PlantHarness ---------------------------------------------------------------------

PlantHarness::PlantHarness(std::vector<std::string> stations) {
  BOOST_REQUIRE(hsm::CreateMasterKeyFile(dir() / "pks-hsm.key", {}).ok());
  pks_curve_ = broker::CurveKeyPair::Generate().value();
  BOOST_REQUIRE(pks_curve_.Save(dir() / "pks.curve").ok());
  kms_curve_ = broker::CurveKeyPair::Generate().value();
  WriteFile(dir() / "kms.pub", "public = " + broker::CurvePublicKeyToZ85(kms_curve_.public_key()) + "\n");
  for (const std::string& station : stations) {
    station_curves_[station] = broker::CurveKeyPair::Generate().value();
  }
  BOOST_REQUIRE(kms_registry_.Add(pks_curve_.public_key(), kPlant).ok());

  auto oem = hsm::CreateSoftwareCustody({});
  BOOST_REQUIRE(oem.ok());
  oem_ = std::move(oem).value();
  transport_ = oem_->ImportKeyFromHex(hsm::KeyKind::kAes128, kTransportHex, "transport").value();

  StartKms();
  WriteConfig();
  auto config = LoadPksConfig(config_path());
  BOOST_REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  config_ = *config;
  WriteFile(dir() / "transport.hex", std::string(kTransportHex) + "\n", true);
  Status imported = ImportTransportKey(config_, kTransportRef, dir() / "transport.hex");
  BOOST_REQUIRE_MESSAGE(imported.ok(), imported.ToString());
  auto keys = ShowPlantKeys(config_);
  BOOST_REQUIRE_MESSAGE(keys.ok(), keys.status().ToString());
  plant_wrap_key_.kind = hsm::KeyKind::kX25519;
  auto wrap = ParseHex(keys->wrap_key_hex, "wrap key").value();
  std::copy(wrap.begin(), wrap.end(), plant_wrap_key_.bytes.begin());
  plant_signing_key_.kind = hsm::KeyKind::kEd25519;
  auto signing = ParseHex(keys->signing_key_hex, "signing key").value();
  std::copy(signing.begin(), signing.end(), plant_signing_key_.bytes.begin());
}

PlantHarness::~PlantHarness() {
  station_clients_.clear();
  stations_.clear();
  pks_.reset();
  kms_server_.reset();
  kms_.reset();
}

void PlantHarness::WriteConfig() {
  std::string listen = station_endpoint_.empty() ? "tcp://127.0.0.1:0" : station_endpoint_;
  WriteFile(config_path(),
            "data_dir = \"pks-data\"\n"
            "[log]\nlevel = \"warn\"\n"
            "[plant]\nid = \"plant-a\"\n"
            "[hsm]\nbackend = \"software\"\nmaster_key_file = \"pks-hsm.key\"\n"
            "[kms]\nconnect = \"" + kms_endpoint_ + "\"\ncurve_public_key_file = \"kms.pub\"\n"
            "[link]\nlisten = \"" + listen + "\"\ncurve_key_file = \"pks.curve\"\n"
            "heartbeat_timeout_ms = 1000\n"
            "[stock]\nshort_stock_backoff_s = 2\nrequest_retry_s = " +
            std::to_string(stock_request_retry_s_) + "\n"
            "[reservations]\ndeadline_sweep_ms = 100\n");
}

void PlantHarness::StartPks() {
  auto started = PksService::Start(config_);
  BOOST_REQUIRE_MESSAGE(started.ok(), started.status().ToString());
  pks_ = std::move(started).value();
  // Restarts keep the same port, so stations reconnect by themselves.
  station_endpoint_ = pks_->station_endpoint();
  WriteConfig();
  config_ = LoadPksConfig(config_path()).value();
}

void PlantHarness::StopPks() { pks_.reset(); }

void PlantHarness::SetStockRequestRetry(int seconds) {
  stock_request_retry_s_ = seconds;
  WriteConfig();
  config_ = LoadPksConfig(config_path()).value();
}

void PlantHarness::FixStationPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  socklen_t length = sizeof(address);
  BOOST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  ::close(fd);
  station_endpoint_ = "tcp://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  WriteConfig();
  config_ = LoadPksConfig(config_path()).value();
}

void PlantHarness::StartKms() {
  if (!kms_) kms_ = std::make_unique<TestPeer>(dir() / "kms", "kms");
  auto server = broker::LinkServer::Start(
      kms_->store(), kms_->Handler(),
      {.bind_endpoint = kms_endpoint_.empty() ? "tcp://127.0.0.1:0" : kms_endpoint_,
       .keys = kms_curve_,
       .peers = &kms_registry_,
       .link = FastLink()});
  BOOST_REQUIRE_MESSAGE(server.ok(), server.status().ToString());
  kms_server_ = std::move(server).value();
  kms_endpoint_ = kms_server_->endpoint();
}

void PlantHarness::StopKms() { kms_server_.reset(); }

void PlantHarness::Configure(const std::vector<ProductSpec>& products, ConfigOptions options) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::Product>> product_offsets;
  for (const ProductSpec& spec : products) {
    std::vector<flatbuffers::Offset<wire::SlotLayout>> slots;
    slots.push_back(wire::CreateSlotLayout(fbb, 1, 1, 1, 0));
    slots.push_back(wire::CreateSlotLayout(fbb, 4, 1, 1, 0));
    slots.push_back(wire::CreateSlotLayout(fbb, 5, 1, 1, 0));
    flatbuffers::Offset<wire::CertificateSlot> certificate = 0;
    if (spec.certificate_slot) {
      schemas::CertificateSlotSpec slot;
      slot.name = "identity";
      slot.organization = "Acme";
      slot.organizational_unit = "BCM";
      slot.common_name = "{product} {uid}";
      slot.validity_days = 3650;
      slot.extended_key_usage = {"clientAuth"};
      certificate = schemas::CreateCertificateSlot(fbb, slot);
    }
    product_offsets.push_back(wire::CreateProduct(
        fbb, fbb.CreateString(spec.name), fbb.CreateString("acme"), fbb.CreateVector(slots),
        wire::SheFlagLayout::SHE_CLASSIC, fbb.CreateString(kTransportRef), spec.min_stock,
        spec.target_stock, spec.reservation_timeout_s, certificate));
  }
  std::vector<flatbuffers::Offset<wire::Station>> stations;
  for (const auto& [id, keys] : station_curves_) {
    stations.push_back(wire::CreateStation(fbb, fbb.CreateString(id),
                                           schemas::CreateBytes(fbb, keys.public_key())));
  }
  auto sync = options.interval_s == 0
                  ? wire::CreateSyncPolicy(fbb, wire::SyncMode::CONTINUOUS, 0)
                  : wire::CreateSyncPolicy(fbb, wire::SyncMode::INTERVAL, options.interval_s);
  std::vector<flatbuffers::Offset<wire::IssuingCa>> cas;
  for (const auto& ca : options.issuing_cas) {
    cas.push_back(wire::CreateIssuingCaDirect(fbb, ca.oem.c_str(), ca.key_name.c_str(), ca.certificate.c_str(),
                                              ca.oem_ca_certificate.c_str(), ca.budget_min, ca.budget_target));
  }
  fbb.Finish(wire::CreateConfigUpdate(fbb, ++config_version_, fbb.CreateString(options.plant),
                                      fbb.CreateVector(product_offsets), fbb.CreateVector(stations),
                                      sync, fbb.CreateVector(cas)));
  kms_->Send({kPlant, "control"}, wire::MessageType::ConfigUpdate, schemas::FinishedBytes(fbb));
}

void PlantHarness::ShipSealedForAnotherPlant(const std::string& product, size_t count) {
  hsm::KeyHandle other = oem_->GenerateKey(hsm::KeyKind::kX25519).value();
  hsm::PublicKey other_public = oem_->GetPublicKey(other).value();
  Ship(product, count, "", "", &other_public);
}

std::vector<std::string> PlantHarness::Ship(const std::string& product, size_t count,
                                            const std::string& request_id, std::string batch_id,
                                            const hsm::PublicKey* seal_for) {
  if (batch_id.empty()) batch_id = "batch-" + std::to_string(++batch_counter_);
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::WrappedKeySet>> sets;
  std::vector<std::string> ids;
  for (size_t i = 0; i < count; ++i) {
    std::string id = batch_id + "-ks-" + std::to_string(i);
    std::vector<hsm::KeyHandle> keys;
    for (size_t s = 0; s < std::size(kLayout); ++s) {
      keys.push_back(oem_->GenerateKey(hsm::KeyKind::kAes128).value());
    }
    auto wrapped = oem_->WrapForPeer(keys, seal_for ? *seal_for : plant_wrap_key_,
                                     "keyset/" + id + "/plant/" + std::string(kPlant));
    BOOST_REQUIRE_MESSAGE(wrapped.ok(), wrapped.status().ToString());
    {
      std::lock_guard lock(keys_mu_);
      keys_[id] = keys;
      product_of_[id] = product;
    }
    sets.push_back(wire::CreateWrappedKeySet(
        fbb, fbb.CreateString(id), schemas::CreateBytes(fbb, wrapped->bytes),
        schemas::CreateBytes(fbb, std::span<const uint8_t>(kLayout, std::size(kLayout)))));
    ids.push_back(id);
  }
  fbb.Finish(wire::CreateStockBatch(fbb, fbb.CreateString(request_id), fbb.CreateString(batch_id),
                                    fbb.CreateString(kPlant), fbb.CreateString(product),
                                    fbb.CreateVector(sets)));
  kms_->Send({kPlant, "control"}, wire::MessageType::StockBatch, schemas::FinishedBytes(fbb));
  return ids;
}

void PlantHarness::SendVerificationRequest(const std::string& barrier_id) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateVerificationRequest(fbb, fbb.CreateString(barrier_id),
                                             fbb.CreateString("acme")));
  kms_->Send({kPlant, "control"}, wire::MessageType::VerificationRequest,
             schemas::FinishedBytes(fbb));
}

std::vector<RecordView> PlantHarness::Records() {
  std::vector<RecordView> records;
  for (const auto& received : kms_->Of(wire::MessageType::InjectionRecord)) {
    auto verified = schemas::DecodeInjectionRecord(received.payload);
    BOOST_REQUIRE_MESSAGE(verified.ok(), verified.status().ToString());
    const wire::InjectionRecordBody* body = verified->body;
    RecordView view;
    view.record_sequence = body->record_sequence();
    view.plant = std::string(schemas::Text(body->plant()));
    view.station = std::string(schemas::Text(body->station()));
    view.product = std::string(schemas::Text(body->product()));
    view.key_set_id = std::string(schemas::Text(body->key_set_id()));
    view.burn_reason = std::string(schemas::Text(body->burn_reason()));
    if (body->ecu_uid() && body->ecu_uid()->size() == view.ecu_uid.size()) {
      std::copy_n(body->ecu_uid()->data(), view.ecu_uid.size(), view.ecu_uid.begin());
    }
    view.injected = body->outcome() == wire::RecordOutcome::INJECTED;
    hsm::Signature signature{};
    std::copy_n(verified->signature.data(), signature.size(), signature.begin());
    view.signature_valid =
        hsm::VerifySignature(plant_signing_key_, verified->signed_bytes, signature).ok();
    if (body->slots()) {
      for (const auto* slot : *body->slots()) {
        if (slot->m4() && slot->m4()->size() == 32) ++view.slots_with_proof;
      }
    }
    if (const wire::RecordCertificate* c = body->certificate()) {
      view.certificate = std::string(schemas::Text(c->certificate()));
      view.certificate_chain = std::string(schemas::Text(c->chain()));
      view.confirm_challenge = Copy(schemas::Bytes(c->confirm_challenge()));
      view.confirmation = Copy(schemas::Bytes(c->confirmation()));
    }
    records.push_back(view);
  }
  return records;
}

void PlantHarness::StartStation(const std::string& station) {
  auto& peer = stations_[station];
  if (!peer) peer = std::make_unique<TestPeer>(dir() / ("station-" + station), station);
  auto client = broker::LinkClient::Start(peer->store(), peer->Handler(),
                                          {.server_endpoint = station_endpoint_,
                                           .server_key = pks_curve_.public_key(),
                                           .server_name = kPlant,
                                           .keys = station_curves_.at(station),
                                           .link = FastLink()});
  BOOST_REQUIRE_MESSAGE(client.ok(), client.status().ToString());
  station_clients_[station] = std::move(client).value();
}

void PlantHarness::StopStation(const std::string& station) { station_clients_.erase(station); }

TestPeer& PlantHarness::station(const std::string& name) { return *stations_.at(name); }

std::string PlantHarness::SendRequest(const std::string& station, const std::string& product,
                                      std::span<const uint8_t> uid, std::string claimed_station) {
  if (claimed_station.empty()) claimed_station = station;
  std::string request_id = "req-" + std::to_string(++request_counter_);
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateKeyPackageRequest(fbb, fbb.CreateString(request_id),
                                           fbb.CreateString(claimed_station),
                                           fbb.CreateString(product), schemas::CreateBytes(fbb, uid)));
  stations_.at(station)->Send({kPlant, "requests"}, wire::MessageType::KeyPackageRequest,
                              schemas::FinishedBytes(fbb));
  return request_id;
}

std::vector<PackageView> PlantHarness::PackagesOf(const std::string& station) {
  std::vector<PackageView> packages;
  for (const auto& received : stations_.at(station)->Of(wire::MessageType::KeyPackage)) {
    auto package = schemas::DecodeMessage<wire::KeyPackage>(received.payload);
    BOOST_REQUIRE(package.ok());
    const wire::KeyPackage* p = *package;
    PackageView view;
    view.request_id = std::string(schemas::Text(p->request_id()));
    view.package_id = std::string(schemas::Text(p->package_id()));
    view.key_set_id = std::string(schemas::Text(p->key_set_id()));
    view.deadline_us = p->deadline_us();
    if (p->error()) {
      view.error = static_cast<int>(p->error()->code());
      view.message = std::string(schemas::Text(p->error()->message()));
    }
    if (p->slots()) {
      for (const auto* s : *p->slots()) {
        view.slots.push_back({s->slot(), s->auth_slot(), s->flags(), s->counter(),
                              Copy(schemas::Bytes(s->m1())), Copy(schemas::Bytes(s->m2())),
                              Copy(schemas::Bytes(s->m3())),
                              Copy(schemas::Bytes(s->proof_digest()))});
      }
    }
    if (const wire::CertificateChallenge* c = p->certificate()) {
      view.certificate_slot = std::string(schemas::Text(c->slot()));
      view.certificate_challenge = Copy(schemas::Bytes(c->challenge()));
    }
    packages.push_back(std::move(view));
  }
  return packages;
}

std::optional<IssuedView> PlantHarness::RequestCertificate(const std::string& station,
                                                           const PackageView& package,
                                                           const hsm::SheUid& uid,
                                                           const std::string& csr, std::string slot) {
  size_t before = stations_.at(station)->Of(wire::MessageType::CertificateIssued).size();
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateCertificateRequest(fbb, fbb.CreateString(package.package_id),
                                            schemas::CreateBytes(fbb, uid), fbb.CreateString(slot),
                                            fbb.CreateString(csr)));
  stations_.at(station)->Send({kPlant, "requests"}, wire::MessageType::CertificateRequest,
                              schemas::FinishedBytes(fbb));
  if (!stations_.at(station)->WaitFor([&](const std::vector<TestPeer::Received>& received) {
        size_t n = 0;
        for (const auto& r : received) n += r.type == wire::MessageType::CertificateIssued;
        return n > before;
      })) {
    return std::nullopt;
  }
  const auto answer = stations_.at(station)->Of(wire::MessageType::CertificateIssued).at(before);
  auto issued = schemas::DecodeMessage<wire::CertificateIssued>(answer.payload);
  BOOST_REQUIRE(issued.ok());
  IssuedView view;
  if (const wire::PackageError* error = (*issued)->error()) {
    view.error = static_cast<int>(error->code());
    view.message = std::string(schemas::Text(error->message()));
  }
  view.certificate = std::string(schemas::Text((*issued)->certificate()));
  view.chain = std::string(schemas::Text((*issued)->chain()));
  view.confirm_challenge = Copy(schemas::Bytes((*issued)->confirm_challenge()));
  return view;
}

void PlantHarness::Report(const std::string& station, const PackageView& package,
                          const hsm::SheUid& uid, const CertificateReport& certificate) {
  Report(station, package, uid, -1, &certificate);
}

void PlantHarness::GrantBudget(const std::string& grant_id, uint32_t count, const std::string& request_id,
                               const std::string& plant) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateCertificateBudgetGrantDirect(fbb, request_id.c_str(), grant_id.c_str(),
                                                      plant.empty() ? kPlant : plant.c_str(), "acme", count));
  kms_->Send({kPlant, "control"}, wire::MessageType::CertificateBudgetGrant, schemas::FinishedBytes(fbb));
}

std::string PlantHarness::InstallIssuingCa(const std::vector<ProductSpec>& products, uint32_t grant,
                                           uint32_t budget_min, uint32_t budget_target) {
  const std::string generation = std::to_string(++ca_counter_);
  const std::string key_name = "plant-ca/acme/" + generation;
  const std::vector<uint8_t> challenge(32, static_cast<uint8_t>(0x40 + ca_counter_));
  size_t before = kms_->Of(wire::MessageType::PlantCaCsr).size();
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreatePlantCaRequestDirect(fbb, (std::string(kPlant) + "/acme/" + generation).c_str(),
                                              "acme", key_name.c_str(), "Acme", kPlant,
                                              ("acme issuing CA plant-a " + generation).c_str(),
                                              &challenge));
  kms_->Send({kPlant, "control"}, wire::MessageType::PlantCaRequest, schemas::FinishedBytes(fbb));
  BOOST_REQUIRE(kms_->WaitFor([&](const std::vector<TestPeer::Received>& received) {
    size_t n = 0;
    for (const auto& r : received) n += r.type == wire::MessageType::PlantCaCsr;
    return n > before;
  }));
  const auto answer = kms_->Of(wire::MessageType::PlantCaCsr).at(before);
  const auto* csr = flatbuffers::GetRoot<wire::PlantCaCsr>(answer.payload.data());
  auto checked = hsm::CheckCsr(schemas::Text(csr->csr()), challenge);
  BOOST_REQUIRE_MESSAGE(checked.ok(), checked.status().ToString());
  auto root_key = oem_->GenerateKey(hsm::KeyKind::kEcdsaP256);
  BOOST_REQUIRE(root_key.ok());
  hsm::CertificateSubject root_subject;
  root_subject.organization = "Acme";
  root_subject.common_name = "Acme root " + generation;
  auto root = hsm::SelfSignCa(*oem_, *root_key, root_subject, hsm::ValidForDaysFromNow(3650));
  BOOST_REQUIRE(root.ok());
  auto certificate =
      hsm::IssueCaCertificate(*oem_, *root_key, *root, *checked, hsm::ValidForDaysFromNow(1825));
  BOOST_REQUIRE(certificate.ok());
  ConfigOptions options;
  options.issuing_cas.push_back({"acme", key_name, *certificate, *root, budget_min, budget_target});
  Configure(products, options);
  if (grant > 0) {
    GrantBudget("grant-" + key_name, grant);
    // In process, wait until the plant holds it (a child process's callers retry instead).
    for (int i = 0; pks_ && i < 1000; ++i) {
      auto budgets = pks_->Snapshot().certificate_budgets;
      if (!budgets.empty() && budgets[0].granted >= grant) break;
      std::this_thread::sleep_for(10ms);
    }
  }
  return *root;
}

std::optional<PackageView> PlantHarness::Request(const std::string& station,
                                                 const std::string& product, const hsm::SheUid& uid,
                                                 std::string claimed_station,
                                                 std::chrono::milliseconds timeout) {
  std::string request_id = SendRequest(station, product, uid, std::move(claimed_station));
  std::optional<PackageView> found;
  stations_.at(station)->WaitFor(
      [&](const std::vector<TestPeer::Received>& received) {
        for (const auto& r : received) {
          if (r.type != wire::MessageType::KeyPackage) continue;
          auto p = flatbuffers::GetRoot<wire::KeyPackage>(r.payload.data());
          if (schemas::Text(p->request_id()) == request_id) return true;
        }
        return false;
      },
      timeout);
  for (auto& package : PackagesOf(station)) {
    if (package.request_id == request_id) found = package;
  }
  return found;
}

void PlantHarness::Report(const std::string& station, const PackageView& package,
                          const hsm::SheUid& uid, int corrupt_slot,
                          const CertificateReport* certificate) {
  std::vector<hsm::KeyHandle> keys;
  {
    std::lock_guard lock(keys_mu_);
    keys = keys_.at(package.key_set_id);
  }
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::ResultSlot>> slots;
  for (size_t i = 0; i < package.slots.size(); ++i) {
    const auto& slot = package.slots[i];
    hsm::SheProofFields fields;
    fields.uid = uid;
    fields.slot = slot.slot;
    fields.auth_slot = slot.auth_slot;
    fields.counter = slot.counter;
    auto proof = oem_->ComputeSheProof(keys.at(i), fields);
    BOOST_REQUIRE(proof.ok());
    if (static_cast<int>(i) == corrupt_slot) proof->m5[0] ^= 0x01;
    slots.push_back(wire::CreateResultSlot(fbb, slot.slot, schemas::CreateBytes(fbb, proof->m4),
                                           schemas::CreateBytes(fbb, proof->m5),
                                           wire::EcuError::NONE, 1));
  }
  flatbuffers::Offset<wire::CertificateResult> certificate_result = 0;
  if (certificate != nullptr) {
    certificate_result = wire::CreateCertificateResult(
        fbb, fbb.CreateString(certificate->slot), static_cast<wire::EcuError>(certificate->ecu_error),
        certificate->confirmation.empty() ? 0 : schemas::CreateBytes(fbb, certificate->confirmation),
        fbb.CreateString(certificate->detail));
  }
  fbb.Finish(wire::CreateInjectionResult(fbb, fbb.CreateString(package.package_id),
                                         schemas::CreateBytes(fbb, uid), fbb.CreateVector(slots), 1,
                                         0, certificate_result));
  stations_.at(station)->Send({kPlant, "requests"}, wire::MessageType::InjectionResult,
                              schemas::FinishedBytes(fbb));
}

bool PlantHarness::PackageIsCorrect(const PackageView& package, const hsm::SheUid& uid) {
  std::vector<hsm::KeyHandle> keys;
  {
    std::lock_guard lock(keys_mu_);
    keys = keys_.at(package.key_set_id);
  }
  if (package.slots.size() != std::size(kLayout)) return false;
  for (size_t i = 0; i < package.slots.size(); ++i) {
    const auto& slot = package.slots[i];
    hsm::SheLoadRequest request;
    request.new_key = keys.at(i);
    request.auth_key = i == 0 ? transport_ : keys.at(0);
    request.fields.uid = uid;
    request.fields.slot = slot.slot;
    request.fields.auth_slot = slot.auth_slot;
    request.fields.counter = slot.counter;
    request.flags = slot.flags;
    auto expected = oem_->ComputeSheLoad(request);
    if (!expected.ok()) return false;
    if (Copy(expected->m1) != slot.m1 || Copy(expected->m2) != slot.m2 ||
        Copy(expected->m3) != slot.m3) {
      return false;
    }
    // The digest the injector checks the ECU's answer against: of the true M4/M5.
    auto proof = oem_->ComputeSheProof(keys.at(i), request.fields);
    if (!proof.ok() || Copy(hsm::DigestSheProof(*proof)) != slot.proof_digest) return false;
  }
  return true;
}

hsm::SheUid PlantHarness::Uid(uint64_t n) {
  hsm::SheUid uid{};
  uid[0] = 0xEC;
  for (int i = 0; i < 8; ++i) uid[14 - i] = static_cast<uint8_t>(n >> (8 * i));
  return uid;
}

}  // namespace keyline::pks::testing

#include "keyline/pks/pks_service.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <set>
#include <thread>

#include "keyline/broker/curve_keys.h"
#include "keyline/broker/database.h"
#include "keyline/broker/link.h"
#include "keyline/broker/message_store.h"
#include "keyline/broker/peer_registry.h"
#include "keyline/broker/queue_inspector.h"
#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/common/thread_name.h"
#include "keyline/hsm/x509.h"
#include "keyline/hsm/custody_config.h"
#include "plant_core.h"

namespace keyline::pks {
namespace {

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// How often the plant tells the KMS its stock levels while nothing else changes.
constexpr int64_t kStatusIntervalUs = 30'000'000;

struct SyncPolicy {
  bool continuous = true;
  int interval_s = 60;
  bool operator==(const SyncPolicy&) const = default;
};

class PksServiceImpl final : public PksService {
 public:
  explicit PksServiceImpl(PksConfig config) : config_(std::move(config)) {}

  ~PksServiceImpl() override {
    {
      std::lock_guard lock(maintenance_mu_);
      stopping_ = true;
    }
    maintenance_cv_.notify_all();
    if (maintenance_.joinable()) maintenance_.join();
    kms_client_.reset();
    station_server_.reset();
    store_.reset();
    core_.state.reset();
    database_.reset();
    keys_.reset();
    custody_.reset();
  }

  Status Init() {
    ASSIGN_OR_RETURN(custody_, hsm::OpenCustody(config_.hsm));
    ASSIGN_OR_RETURN(keys_, PlantKeys::Open(custody_.get()));
    ASSIGN_OR_RETURN(curve_keys_, broker::CurveKeyPair::Load(config_.curve_key_file));
    ASSIGN_OR_RETURN(kms_key_, broker::LoadCurvePublicKeyFile(config_.kms_public_key_file));
    ASSIGN_OR_RETURN(database_, broker::Database::Open({.path = config_.data_dir / "db",
                                                        .column_families = PksColumnFamilies()}));
    ASSIGN_OR_RETURN(store_, broker::MessageStore::Open(database_.get(), {.self = config_.plant_id}));
    core_.plant_id = config_.plant_id;
    core_.database = database_.get();
    core_.store = store_.get();
    core_.keys = keys_.get();
    core_.now_us = NowUs;
    core_.timing.stock_request_retry_us = int64_t{config_.stock_request_retry_s} * 1'000'000;
    core_.timing.short_stock_backoff_us = int64_t{config_.short_stock_backoff_s} * 1'000'000;
    core_.failed_writes_seen = store_->counters().failed_writes;
    ASSIGN_OR_RETURN(core_.state, PlantState::Load(database_.get(), config_.plant_id));
    SyncStations();

    broker::LinkOptions link;
    link.heartbeat_timeout_ms = config_.heartbeat_timeout_ms;
    link.heartbeat_interval_ms = std::max(100, config_.heartbeat_timeout_ms / 5);
    link_options_ = link;
    ASSIGN_OR_RETURN(
        station_server_,
        broker::LinkServer::Start(
            store_.get(),
            [this](const broker::Delivery& d, broker::WriteContext& w) {
              return HandleStationDelivery(core_, d, w);
            },
            {.bind_endpoint = config_.station_endpoint,
             .keys = curve_keys_,
             .peers = &stations_,
             .link = link}));
    RETURN_IF_ERROR(StartKmsClient(CurrentPolicy()));
    LogStartup();
    maintenance_ = std::thread([this] {
      NameThisThread("pks-maintain");
      MaintenanceLoop();
    });
    return Status::Ok();
  }

  std::string station_endpoint() const override { return station_server_->endpoint(); }

  PksSnapshot Snapshot() const override {
    PksSnapshot snapshot;
    {
      std::lock_guard lock(core_.mu);
      snapshot = SnapshotOf(*core_.state);
    }
    for (const auto& q : store_->OutboxStats()) {
      snapshot.queues.push_back({q.queue.peer, q.queue.stream, q.depth(), 0});
      if (q.queue.peer == kKmsPeer && q.queue.stream == kRecordsStream) {
        snapshot.records_queued = q.depth();
      }
    }
    std::lock_guard lock(client_mu_);
    snapshot.kms_connected = kms_client_ && kms_client_->connected();
    snapshot.stations_connected = station_server_->connected_peers();
    return snapshot;
  }

 private:
  SyncPolicy CurrentPolicy() const {
    std::lock_guard lock(core_.mu);
    const PlantConfig& plant = core_.state->config();
    if (plant.has_sync_policy) return {plant.sync_continuous, plant.sync_interval_s};
    return {config_.sync_continuous, config_.sync_interval_s};
  }

  Status StartKmsClient(SyncPolicy policy) {
    std::lock_guard lock(client_mu_);
    kms_client_.reset();  // joins the old client's threads before the new one starts
    ASSIGN_OR_RETURN(
        kms_client_,
        broker::LinkClient::Start(
            store_.get(),
            [this](const broker::Delivery& d, broker::WriteContext& w) {
              Status handled = HandleKmsDelivery(core_, d, w);
              // A new configuration may admit or revoke stations: act on it now, not at the
              // next sweep (a station refused meanwhile backs off for seconds).
              WakeMaintenance();
              return handled;
            },
            {.server_endpoint = config_.kms_endpoint,
             .server_key = kms_key_,
             .server_name = kKmsPeer,
             .keys = curve_keys_,
             .link = link_options_,
             .contact_interval_s = policy.continuous ? 0 : policy.interval_s}));
    policy_ = policy;
    spdlog::info("KMS link to {}: {}", config_.kms_endpoint,
                 policy.continuous ? std::string("continuous")
                                   : "contact every " + std::to_string(policy.interval_s) + " s");
    return Status::Ok();
  }

  // Admits exactly the stations of the current configuration (ZAP reads the registry).
  void SyncStations() {
    std::map<std::string, broker::CurvePublicKey> wanted;
    {
      std::lock_guard lock(core_.mu);
      wanted = core_.state->config().stations;
    }
    if (wanted == admitted_) return;
    for (const auto& [id, key] : admitted_) {
      auto it = wanted.find(id);
      if (it == wanted.end() || it->second != key) {
        stations_.Revoke(key);
        spdlog::info("station {} no longer admitted", id);
      }
    }
    for (const auto& [id, key] : wanted) {
      Status added = stations_.Add(key, id);
      if (!added.ok()) spdlog::error("station {}: {}", id, added.ToString());
    }
    admitted_ = std::move(wanted);
  }

  void LogStartup() {
    std::lock_guard lock(core_.mu);
    const PlantState& state = *core_.state;
    spdlog::info("PKS of plant {} serving stations on {}; configuration version {}, {} products, "
                 "{} stations; HSM: {}",
                 config_.plant_id, station_server_->endpoint(), state.config().version,
                 state.config().products.size(), state.config().stations.size(),
                 custody_->Info().description);
    for (const std::string& product : state.ProductNames()) {
      ProductCounts c = state.Counts(product);
      spdlog::info("  {}: {} in stock, {} reserved, {} requested, {} injected, {} burned", product,
                   c.in_stock, c.reserved, c.requested, c.injected, c.burned);
    }
  }

  void MaintenanceLoop() {
    int64_t last_replenish = 0;
    int64_t last_status = 0;
    while (true) {
      {
        std::unique_lock lock(maintenance_mu_);
        maintenance_cv_.wait_for(lock, std::chrono::milliseconds(config_.deadline_sweep_ms),
                                 [this] { return stopping_ || wake_; });
        if (stopping_) return;
        wake_ = false;
      }
      int64_t now = NowUs();
      bool expired;
      {
        std::lock_guard lock(core_.mu);
        expired = !core_.state->ExpiredReservations(now, 1).empty();
      }
      if (expired) {
        Status burned = store_->Commit([this](broker::WriteContext& write) {
          return BurnExpiredReservations(core_, write, 256).status();
        });
        if (!burned.ok()) spdlog::error("burning expired reservations: {}", burned.ToString());
      }
      if (now - last_replenish >= 1'000'000) {
        last_replenish = now;
        Status replenished = store_->Commit(
            [this](broker::WriteContext& write) { return ReplenishAll(core_, write); });
        if (!replenished.ok()) spdlog::error("stock requests: {}", replenished.ToString());
      }
      if (now - last_status >= kStatusIntervalUs && ControlQueueDrained()) {
        last_status = now;
        Status sent = store_->Commit([this](broker::WriteContext& write) {
          std::lock_guard lock(core_.mu);
          RETURN_IF_ERROR(core_.SyncWithDatabase());
          return SendPlantStatus(core_, write);
        });
        if (!sent.ok()) spdlog::error("plant status: {}", sent.ToString());
      }
      SyncStations();
      SyncPolicy policy = CurrentPolicy();
      if (!(policy == policy_)) {
        Status restarted = StartKmsClient(policy);
        if (!restarted.ok()) spdlog::error("restarting the KMS link: {}", restarted.ToString());
      }
      if (core_.contact_wanted.exchange(false)) {
        std::lock_guard lock(client_mu_);
        if (kms_client_) kms_client_->ContactNow();
      }
    }
  }

  void WakeMaintenance() {
    {
      std::lock_guard lock(maintenance_mu_);
      wake_ = true;
    }
    maintenance_cv_.notify_all();
  }

  // A status is only worth queueing when the previous one has been delivered: in interval
  // mode they would otherwise pile up between contacts.
  bool ControlQueueDrained() const {
    broker::QueueId control{kKmsPeer, kControlStream};
    return store_->LastSequence(control) == store_->AckedThrough(control);
  }

  PksConfig config_;
  std::unique_ptr<hsm::KeyCustody> custody_;
  std::unique_ptr<PlantKeys> keys_;
  broker::CurveKeyPair curve_keys_;
  broker::CurvePublicKey kms_key_{};
  std::unique_ptr<broker::Database> database_;
  std::unique_ptr<broker::MessageStore> store_;
  mutable PlantCore core_;
  broker::PeerRegistry stations_;
  std::map<std::string, broker::CurvePublicKey> admitted_;  // maintenance thread only
  broker::LinkOptions link_options_;
  std::unique_ptr<broker::LinkServer> station_server_;
  mutable std::mutex client_mu_;
  std::unique_ptr<broker::LinkClient> kms_client_;
  SyncPolicy policy_;
  std::mutex maintenance_mu_;
  std::condition_variable maintenance_cv_;
  bool stopping_ = false;
  bool wake_ = false;  // run the maintenance pass now
  std::thread maintenance_;

 public:
  static PksSnapshot SnapshotOf(const PlantState& state) {
    PksSnapshot snapshot;
    snapshot.plant_id = state.plant_id();
    snapshot.config_version = state.config().version;
    for (const std::string& name : state.ProductNames()) {
      ProductCounts c = state.Counts(name);
      ProductStatus product;
      product.product = name;
      auto configured = state.config().products.find(name);
      if (configured != state.config().products.end()) {
        product.configured = true;
        product.min_stock = configured->second.min_stock;
        product.target_stock = configured->second.target_stock;
      }
      product.in_stock = c.in_stock;
      product.reserved = c.reserved;
      product.requested = c.requested;
      product.injected = c.injected;
      product.burned = c.burned;
      product.certificates_issued = c.certificates;
      snapshot.products.push_back(product);
    }
    snapshot.open_reservations = state.open_reservations();
    snapshot.records_written = state.record_sequence();
    snapshot.stock_requests_open = state.stock_requests().size();
    for (const auto& [oem, ca] : state.config().issuing_cas) {
      IssuingCaStatus status{oem, ca.key_name, "", 0};
      if (auto info = hsm::InspectCertificate(ca.certificate); info.ok()) {
        status.subject = info->subject.common_name;
        status.not_after_us = info->validity.not_after.time_since_epoch().count() * 1'000'000;
      }
      snapshot.issuing_cas.push_back(std::move(status));
    }
    std::set<std::string> oems;
    for (const auto& [oem, budget] : state.budgets()) oems.insert(oem);
    for (const auto& [oem, ca] : state.config().issuing_cas) oems.insert(oem);
    for (const std::string& oem : oems) {
      const BudgetLevel level = state.BudgetLevelOf(oem);
      CertificateBudgetStatus budget{oem, level.granted, level.issued, level.pending, level.available(),
                                     level.requested};
      if (auto ca = state.config().issuing_cas.find(oem); ca != state.config().issuing_cas.end()) {
        budget.budget_min = ca->second.budget_min;
        budget.budget_target = ca->second.budget_target;
      }
      snapshot.certificate_budgets.push_back(budget);
    }
    return snapshot;
  }
};

}  // namespace

StatusOr<std::unique_ptr<PksService>> PksService::Start(const PksConfig& config) {
  auto service = std::make_unique<PksServiceImpl>(config);
  RETURN_IF_ERROR(service->Init());
  return std::unique_ptr<PksService>(std::move(service));
}

StatusOr<PksSnapshot> ReadPksStatus(const PksConfig& config) {
  ASSIGN_OR_RETURN(PksSnapshot snapshot, ReadPksStatus(config.data_dir));
  if (!snapshot.plant_id.empty() && snapshot.plant_id != config.plant_id) {
    return FailedPreconditionError(config.data_dir.string() + " holds plant \"" + snapshot.plant_id +
                                   "\", but the configuration says \"" + config.plant_id + "\"");
  }
  snapshot.plant_id = config.plant_id;
  return snapshot;
}

StatusOr<PksSnapshot> ReadPksStatus(const std::filesystem::path& data_dir) {
  std::filesystem::path db_dir = data_dir / "db";
  std::error_code ec;
  if (!std::filesystem::exists(db_dir / "CURRENT", ec)) {
    return NotFoundError(data_dir.string() + " holds no PKS database (has it ever run?)");
  }
  PksSnapshot snapshot;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<broker::Database> database,
                     broker::Database::Open({.path = db_dir,
                                             .column_families = PksColumnFamilies(),
                                             .secondary = true}));
    RETURN_IF_ERROR(database->CatchUp());
    ASSIGN_OR_RETURN(std::unique_ptr<PlantState> state, PlantState::Load(database.get(), ""));
    snapshot = PksServiceImpl::SnapshotOf(*state);
  }

  ASSIGN_OR_RETURN(std::unique_ptr<broker::QueueInspector> inspector,
                   broker::QueueInspector::Open(data_dir));
  ASSIGN_OR_RETURN(std::vector<broker::OutboundQueueView> outbound, inspector->Outbound());
  for (const auto& q : outbound) {
    snapshot.queues.push_back({q.queue.peer, q.queue.stream, q.depth, q.oldest_created_us});
    if (q.queue.peer == kKmsPeer) {
      snapshot.kms_last_contact_us = std::max(snapshot.kms_last_contact_us, q.link.last_contact_us);
      if (!q.link.last_error.empty()) snapshot.kms_last_error = q.link.last_error;
      if (q.queue.stream == kRecordsStream) snapshot.records_queued = q.depth;
    }
  }
  ASSIGN_OR_RETURN(std::vector<broker::InboundStreamView> inbound, inspector->Inbound());
  for (const auto& in : inbound) {
    if (in.from.peer == kKmsPeer) {
      snapshot.kms_last_contact_us = std::max(snapshot.kms_last_contact_us, in.link.last_contact_us);
    }
  }
  return snapshot;
}

StatusOr<PlantPublicKeys> ShowPlantKeys(const PksConfig& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<hsm::KeyCustody> custody, hsm::OpenCustody(config.hsm));
  ASSIGN_OR_RETURN(std::unique_ptr<PlantKeys> keys, PlantKeys::Open(custody.get()));
  ASSIGN_OR_RETURN(broker::CurveKeyPair curve, broker::CurveKeyPair::Load(config.curve_key_file));
  ASSIGN_OR_RETURN(hsm::PublicKey wrap, custody->GetPublicKey(keys->transfer_key()));
  ASSIGN_OR_RETURN(hsm::PublicKey signing, custody->GetPublicKey(keys->signing_key()));
  PlantPublicKeys out;
  out.curve_public_key_z85 = broker::CurvePublicKeyToZ85(curve.public_key());
  out.wrap_key_hex = ToHex(wrap.bytes);
  out.signing_key_hex = ToHex(signing.bytes);
  return out;
}

Status ImportTransportKey(const PksConfig& config, const std::string& ref,
                          const std::filesystem::path& key_file) {
  if (ref.empty()) return InvalidArgumentError("transport key name is empty");
  struct stat info {};
  if (::stat(key_file.c_str(), &info) != 0) {
    return NotFoundError(key_file.string() + ": cannot read the transport key file");
  }
  if ((info.st_mode & 077) != 0) {
    return PermissionDeniedError(key_file.string() + ": key file is readable by others; chmod 600 it");
  }
  std::string hex;
  {
    std::ifstream in(key_file);
    std::getline(in, hex);
  }
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ')) {
    hex.pop_back();
  }
  ASSIGN_OR_RETURN(std::unique_ptr<hsm::KeyCustody> custody, hsm::OpenCustody(config.hsm));
  auto handle = custody->ImportKeyFromHex(hsm::KeyKind::kAes128, hex, key_file.string());
  std::fill(hex.begin(), hex.end(), '\0');
  if (!handle.ok()) return handle.status();
  hsm::ScopedKey key(custody.get(), *handle);
  ASSIGN_OR_RETURN(hsm::WrappedKey wrapped,
                   custody->WrapForStorage(key.get(), TransportKeyContext(ref)));
  ASSIGN_OR_RETURN(std::unique_ptr<broker::Database> database,
                   broker::Database::Open({.path = config.data_dir / "db",
                                           .column_families = PksColumnFamilies()}));
  ASSIGN_OR_RETURN(std::unique_ptr<PlantState> state,
                   PlantState::Load(database.get(), config.plant_id));
  rocksdb::WriteBatch batch;
  state->PutTransportKey(batch, ref, wrapped.bytes);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  rocksdb::Status written = database->db()->Write(sync, &batch);
  if (!written.ok()) return UnavailableError("storing transport key: " + written.ToString());
  ASSIGN_OR_RETURN(auto check, custody->KeyCheckValue(key.get()));
  spdlog::info("transport key \"{}\" imported (check value {})", ref, ToHex(check));
  return Status::Ok();
}

}  // namespace keyline::pks

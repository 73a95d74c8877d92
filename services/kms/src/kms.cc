// Kms::Impl: wires the modules to the database, the link (plants) and the RPC server (admin).
#include "keyline/kms/kms.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include "allocator.h"
#include "audit_log.h"
#include "catalog.h"
#include "json_text.h"
#include "key_set_store.h"
#include "keyline/broker/database.h"
#include "keyline/broker/link.h"
#include "keyline/broker/message_store.h"
#include "keyline/broker/peer_registry.h"
#include "keyline/broker/rpc.h"
#include "keyline/common/thread_name.h"
#include "keyline/kms/batch_file.h"
#include "keyline/common/hex.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/admin_generated.h"
#include "keyline/wire/kms_store_generated.h"
#include "certificate_budgets.h"
#include "kms_context.h"
#include "plant_cas.h"
#include "record_ingest.h"
#include "store_layout.h"
#include "verification.h"

namespace keyline::kms {
namespace {

using nlohmann::json;

std::vector<uint8_t> Reply(const json& body, std::span<const uint8_t> data = {}) {
  flatbuffers::FlatBufferBuilder fbb(256 + data.size());
  auto text = fbb.CreateString(body.dump());
  auto bytes = schemas::CreateBytes(fbb, data);
  fbb.Finish(wire::CreateAdminReply(fbb, text, bytes));
  auto out = schemas::FinishedBytes(fbb);
  return {out.begin(), out.end()};
}

StatusOr<hsm::PublicKey> PublicKeyField(const flatbuffers::Vector<uint8_t>* field, hsm::KeyKind kind,
                                        std::string_view what) {
  RETURN_IF_ERROR(schemas::CheckFixedBytes(field, 32, what));
  hsm::PublicKey key{kind, {}};
  std::copy(field->begin(), field->end(), key.bytes.begin());
  return key;
}

bool IsHexId(const std::string& id) {
  if (id.size() != 16) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

struct ImportJob {
  std::string upload_id;
  std::string actor;
  std::string state = "queued";  // queued | importing | imported | failed
  uint64_t done = 0;
  uint64_t total = 0;
  ImportResult result;
  Status error;
};

}  // namespace

class Kms::Impl {
 public:
  Impl(KmsOptions options, std::unique_ptr<hsm::KeyCustody> custody)
      : options_(std::move(options)), custody_(std::move(custody)) {}

  ~Impl() {
    rpc_.reset();
    link_.reset();
    {
      std::lock_guard lock(jobs_mu_);
      stopping_ = true;
    }
    jobs_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    store_.reset();
    database_.reset();
  }

  Status Open() {
    std::error_code ec;
    std::filesystem::create_directories(options_.data_dir, ec);
    if (ec) return UnavailableError(options_.data_dir.string() + ": " + ec.message());
    if (options_.curve_key_file.empty()) options_.curve_key_file = options_.data_dir / "kms.curve";
    if (std::filesystem::exists(options_.curve_key_file)) {
      ASSIGN_OR_RETURN(curve_keys_, broker::CurveKeyPair::Load(options_.curve_key_file));
    } else {
      ASSIGN_OR_RETURN(curve_keys_, broker::CurveKeyPair::Generate());
      RETURN_IF_ERROR(curve_keys_.Save(options_.curve_key_file));
      spdlog::info("kms: created Curve key pair {}", options_.curve_key_file.string());
    }
    broker::DatabaseOptions db_options;
    db_options.path = options_.data_dir / "db";
    db_options.column_families = {layout::kCatalog, layout::kKeySets, layout::kStock, layout::kShipped,
                                  layout::kBatches, layout::kRecords, layout::kVerify, layout::kAudit,
                                  layout::kMeta};
    db_options.uncompressed_column_families = {layout::kKeySets};  // wrapped keys: random bytes
    ASSIGN_OR_RETURN(database_, broker::Database::Open(db_options));
    ASSIGN_OR_RETURN(store_, broker::MessageStore::Open(database_.get(), {.self = "kms"}));
    context_.database = database_.get();
    context_.store = store_.get();
    context_.custody = custody_.get();
    ASSIGN_OR_RETURN(context_.import_key, custody_->GetOrCreateNamedKey("kms-import", hsm::KeyKind::kX25519));
    ASSIGN_OR_RETURN(context_.signing_key, custody_->GetOrCreateNamedKey("kms-signing", hsm::KeyKind::kEd25519));
    ASSIGN_OR_RETURN(context_.import_public, custody_->GetPublicKey(context_.import_key));
    ASSIGN_OR_RETURN(context_.signing_public, custody_->GetPublicKey(context_.signing_key));

    audit_ = std::make_unique<AuditLog>(&context_);
    catalog_ = std::make_unique<Catalog>(&context_, audit_.get());
    plant_cas_ = std::make_unique<PlantCas>(&context_, catalog_.get(), audit_.get());
    budgets_ = std::make_unique<CertificateBudgets>(&context_, catalog_.get(), audit_.get());
    catalog_->SetIssuingCaSource([this](const std::string& plant) {
      std::vector<IssuingCaConfig> cas = plant_cas_->ActiveFor(plant);
      for (IssuingCaConfig& ca : cas) std::tie(ca.budget_min, ca.budget_target) = budgets_->PolicyFor(plant, ca.oem);
      return cas;
    });
    key_sets_ = std::make_unique<KeySetStore>(&context_, catalog_.get(), audit_.get(), options_.data_dir / "batches");
    allocator_ = std::make_unique<Allocator>(&context_, catalog_.get(), audit_.get());
    records_ = std::make_unique<RecordIngest>(&context_, catalog_.get(), audit_.get(), budgets_.get());
    verifications_ = std::make_unique<Verifications>(&context_, catalog_.get(), audit_.get(), records_.get(),
                                                     options_.data_dir / "exports");
    RETURN_IF_ERROR(audit_->Load());
    RETURN_IF_ERROR(catalog_->Load());
    RETURN_IF_ERROR(plant_cas_->Load());
    RETURN_IF_ERROR(budgets_->Load());
    RETURN_IF_ERROR(key_sets_->Load());
    RETURN_IF_ERROR(allocator_->Load());
    RETURN_IF_ERROR(records_->Load());
    RETURN_IF_ERROR(verifications_->Load());
    RETURN_IF_ERROR(key_sets_->ResumeUnfinished());
    LoadPlantStatus();

    uploads_dir_ = options_.data_dir / "uploads";
    std::filesystem::create_directories(uploads_dir_, ec);
    for (const auto& key : options_.admin_keys) RETURN_IF_ERROR(admin_peers_.Add(key, "admin"));
    for (const auto& file : options_.admin_key_files) {
      auto key = broker::LoadCurvePublicKeyFile(file);
      if (!key.ok()) return InvalidArgumentError("[kms] admin_key_files: " + key.status().message());
      RETURN_IF_ERROR(admin_peers_.Add(*key, "admin"));
    }
    for (const PlantSpec& plant : catalog_->Plants()) {
      RETURN_IF_ERROR(plant_peers_.Add(plant.curve_key, plant.plant));
    }
    worker_ = std::thread([this] {
      NameThisThread("kms-import");
      ImportWorker();
    });
    return Status::Ok();
  }

  Status Serve() {
    broker::LinkServer::Options link;
    link.bind_endpoint = options_.link_bind;
    link.keys = curve_keys_;
    link.peers = &plant_peers_;
    link.link.heartbeat_interval_ms = options_.heartbeat_interval_ms;
    link.link.heartbeat_timeout_ms = options_.heartbeat_timeout_ms;
    ASSIGN_OR_RETURN(link_, broker::LinkServer::Start(
                                store_.get(),
                                [this](const broker::Delivery& d, broker::WriteContext& w) { return Deliver(d, w); },
                                link));
    broker::RpcServer::Options rpc;
    rpc.bind_endpoint = options_.admin_bind;
    rpc.keys = curve_keys_;
    rpc.peers = &admin_peers_;
    ASSIGN_OR_RETURN(rpc_, broker::RpcServer::Start(
                               [this](const std::string& peer, std::span<const uint8_t> request) {
                                 return HandleAdmin(peer, request);
                               },
                               rpc));
    spdlog::info("kms: serving plants on {} and admin on {}", link_->endpoint(), rpc_->endpoint());
    return Status::Ok();
  }

  // ---- plants -------------------------------------------------------------------------------

  Status Deliver(const broker::Delivery& d, broker::WriteContext& write) {
    {
      std::lock_guard lock(status_mu_);
      last_contact_[d.peer] = NowUs();
    }
    switch (d.type) {
      case wire::MessageType::StockRequest: {
        ASSIGN_OR_RETURN(const wire::StockRequest* request, schemas::DecodeMessage<wire::StockRequest>(d.payload));
        return allocator_->HandleStockRequest(d.peer, *request, write);
      }
      case wire::MessageType::InjectionRecord:
        return records_->Apply(d.peer, d.payload, write);
      case wire::MessageType::VerificationWatermark: {
        ASSIGN_OR_RETURN(const wire::VerificationWatermark* mark,
                         schemas::DecodeMessage<wire::VerificationWatermark>(d.payload));
        return verifications_->ApplyWatermark(d.peer, std::string(schemas::Text(mark->barrier_id())),
                                              mark->last_record_sequence(), write);
      }
      case wire::MessageType::PlantStatus: {
        ASSIGN_OR_RETURN(const wire::PlantStatus* status, schemas::DecodeMessage<wire::PlantStatus>(d.payload));
        if (schemas::Text(status->plant()) != d.peer) {
          return PermissionDeniedError("PlantStatus from " + d.peer + " names another plant");
        }
        write.batch().Put(context_.Family(layout::kMeta), "plant_status/" + d.peer, AsText(d.payload));
        std::lock_guard lock(status_mu_);
        plant_status_[d.peer] = std::string(AsText(d.payload));
        return Status::Ok();
      }
      case wire::MessageType::CertificateBudgetRequest: {
        ASSIGN_OR_RETURN(const wire::CertificateBudgetRequest* request,
                         schemas::DecodeMessage<wire::CertificateBudgetRequest>(d.payload));
        return budgets_->HandleRequest(d.peer, *request, write);
      }
      case wire::MessageType::PlantCaCsr: {
        ASSIGN_OR_RETURN(const wire::PlantCaCsr* csr, schemas::DecodeMessage<wire::PlantCaCsr>(d.payload));
        return plant_cas_->ReceiveCsr(d.peer, std::string(schemas::Text(csr->request_id())),
                                      std::string(schemas::Text(csr->csr())), write);
      }
      default:
        return InvalidArgumentError("the KMS does not take " + schemas::MessageTypeName(d.type) + " from " + d.peer);
    }
  }

  void LoadPlantStatus() {
    std::unique_ptr<rocksdb::Iterator> it(database_->db()->NewIterator(rocksdb::ReadOptions(), context_.Family(layout::kMeta)));
    const std::string prefix = "plant_status/";
    std::lock_guard lock(status_mu_);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      plant_status_[it->key().ToString().substr(prefix.size())] = it->value().ToString();
    }
  }

  // ---- admin --------------------------------------------------------------------------------

  StatusOr<std::vector<uint8_t>> HandleAdmin(const std::string& peer, std::span<const uint8_t> bytes) {
    ASSIGN_OR_RETURN(const wire::AdminRequest* request, schemas::DecodeMessage<wire::AdminRequest>(bytes));
    switch (request->command_type()) {
      case wire::AdminCommand::OemAdd: {
        const auto* c = request->command_as_OemAdd();
        OemSpec oem;
        oem.name = std::string(schemas::Text(c->name()));
        ASSIGN_OR_RETURN(oem.signing_key, PublicKeyField(c->signing_public_key(), hsm::KeyKind::kEd25519, "OEM signing key"));
        RETURN_IF_ERROR(catalog_->AddOem(oem, peer));
        return Reply({{"oem", oem.name}, {"signing_key", ToHex(oem.signing_key.bytes)}});
      }
      case wire::AdminCommand::ProductAdd: {
        const auto* c = request->command_as_ProductAdd();
        if (c->product() == nullptr) return InvalidArgumentError("product add: no product given");
        ASSIGN_OR_RETURN(ProductSpec spec, ReadProduct(*c->product()));
        RETURN_IF_ERROR(catalog_->AddProduct(spec, peer));
        return Reply({{"product", spec.name},
                       {"oem", spec.oem},
                       {"slots", spec.slots.size()},
                       {"certificate_slot", spec.certificate ? spec.certificate->name : ""}});
      }
      case wire::AdminCommand::PlantAdd: {
        const auto* c = request->command_as_PlantAdd();
        PlantSpec spec;
        spec.plant = std::string(schemas::Text(c->plant()));
        RETURN_IF_ERROR(schemas::CheckFixedBytes(c->curve_public_key(), 32, "plant Curve key"));
        std::copy(c->curve_public_key()->begin(), c->curve_public_key()->end(), spec.curve_key.begin());
        ASSIGN_OR_RETURN(spec.wrap_key, PublicKeyField(c->wrap_public_key(), hsm::KeyKind::kX25519, "plant wrap key"));
        ASSIGN_OR_RETURN(spec.signing_key, PublicKeyField(c->signing_public_key(), hsm::KeyKind::kEd25519, "plant signing key"));
        if (admin_peers_.IdentityOf(spec.curve_key)) {
          return AlreadyExistsError("that Curve key is an admin key; a plant needs its own");
        }
        RETURN_IF_ERROR(catalog_->AddPlant(spec, peer));
        RETURN_IF_ERROR(plant_peers_.Add(spec.curve_key, spec.plant));
        auto plant = catalog_->Plant(spec.plant);
        return Reply({{"plant", spec.plant}, {"config_version", plant ? plant->config_version : 0}});
      }
      case wire::AdminCommand::StationAdd: {
        const auto* c = request->command_as_StationAdd();
        if (c->station() == nullptr) return InvalidArgumentError("station add: no station given");
        StationSpec station;
        station.station_id = std::string(schemas::Text(c->station()->station_id()));
        RETURN_IF_ERROR(schemas::CheckFixedBytes(c->station()->curve_public_key(), 32, "station Curve key"));
        std::copy(c->station()->curve_public_key()->begin(), c->station()->curve_public_key()->end(),
                  station.curve_key.begin());
        const std::string plant(schemas::Text(c->plant()));
        RETURN_IF_ERROR(catalog_->AddStation(plant, station, peer));
        auto p = catalog_->Plant(plant);
        return Reply({{"plant", plant}, {"station", station.station_id}, {"config_version", p ? p->config_version : 0}});
      }
      case wire::AdminCommand::SyncPolicySet: {
        const auto* c = request->command_as_SyncPolicySet();
        if (c->sync() == nullptr) return InvalidArgumentError("sync-policy set: no policy given");
        const std::string plant(schemas::Text(c->plant()));
        RETURN_IF_ERROR(catalog_->SetSyncPolicy(plant, static_cast<uint8_t>(c->sync()->mode()),
                                                c->sync()->interval_s(), peer));
        auto p = catalog_->Plant(plant);
        return Reply({{"plant", plant}, {"config_version", p ? p->config_version : 0}});
      }
      case wire::AdminCommand::BatchUpload:
        return Upload(*request->command_as_BatchUpload());
      case wire::AdminCommand::BatchImport:
        return StartImport(peer, std::string(schemas::Text(request->command_as_BatchImport()->upload_id())));
      case wire::AdminCommand::BatchImportQuery:
        return QueryImport(std::string(schemas::Text(request->command_as_BatchImportQuery()->upload_id())));
      case wire::AdminCommand::VerificationOpen: {
        ASSIGN_OR_RETURN(VerificationView view,
                         verifications_->Open(std::string(schemas::Text(request->command_as_VerificationOpen()->oem())), peer));
        return Reply(ViewJson(view));
      }
      case wire::AdminCommand::VerificationStatusQuery: {
        ASSIGN_OR_RETURN(VerificationView view,
                         verifications_->Get(std::string(schemas::Text(request->command_as_VerificationStatusQuery()->verification_id()))));
        return Reply(ViewJson(view));
      }
      case wire::AdminCommand::VerificationFetch:
        return Fetch(peer, *request->command_as_VerificationFetch());
      case wire::AdminCommand::AuditVerifyQuery: {
        ASSIGN_OR_RETURN(AuditReport report, audit_->Verify());
        return Reply({{"entries", report.entries}, {"intact", report.intact}, {"problems", report.problems}});
      }
      case wire::AdminCommand::KmsStatusQuery: {
        ASSIGN_OR_RETURN(std::string status, StatusJson());
        return Reply(json::parse(status));
      }
      case wire::AdminCommand::OemCaImport: {
        const auto* c = request->command_as_OemCaImport();
        const std::string oem(schemas::Text(c->oem()));
        RETURN_IF_ERROR(plant_cas_->ImportOemCa(oem, std::string(schemas::Text(c->certificate())), peer));
        ASSIGN_OR_RETURN(hsm::CertificateInfo info, hsm::InspectCertificate(*plant_cas_->OemCaCertificate(oem)));
        return Reply({{"oem", oem}, {"subject", info.subject.common_name}, {"serial", info.serial_hex},
                      {"not_after", Rfc3339(info.validity.not_after.time_since_epoch().count() * 1'000'000)}});
      }
      case wire::AdminCommand::PlantCaIssue: {
        const auto* c = request->command_as_PlantCaIssue();
        ASSIGN_OR_RETURN(PlantCaSpec ca, plant_cas_->Issue(std::string(schemas::Text(c->plant())),
                                                           std::string(schemas::Text(c->oem())), peer));
        return Reply(PlantCaJson(ca));
      }
      case wire::AdminCommand::PlantCaInstall: {
        const auto* c = request->command_as_PlantCaInstall();
        const std::string plant(schemas::Text(c->plant()));
        ASSIGN_OR_RETURN(PlantCaSpec ca, plant_cas_->Install(plant, std::string(schemas::Text(c->oem())),
                                                             std::string(schemas::Text(c->request_id())),
                                                             std::string(schemas::Text(c->certificate())), peer));
        json reply = PlantCaJson(ca);
        auto p = catalog_->Plant(plant);
        reply["config_version"] = p ? p->config_version : 0;
        return Reply(reply);
      }
      case wire::AdminCommand::PlantCaRevoke: {
        const auto* c = request->command_as_PlantCaRevoke();
        ASSIGN_OR_RETURN(PlantCaSpec ca, plant_cas_->Revoke(std::string(schemas::Text(c->plant())),
                                                            std::string(schemas::Text(c->oem())),
                                                            std::string(schemas::Text(c->reason())), peer));
        return Reply(PlantCaJson(ca));
      }
      case wire::AdminCommand::CertificateBudgetSet: {
        const auto* c = request->command_as_CertificateBudgetSet();
        const std::string plant(schemas::Text(c->plant()));
        ASSIGN_OR_RETURN(CertificateBudgetSpec budget,
                         budgets_->SetPolicy(plant, std::string(schemas::Text(c->oem())), c->min(), c->target(), peer));
        json reply = BudgetJson(budget);
        auto p = catalog_->Plant(plant);
        reply["config_version"] = p ? p->config_version : 0;
        return Reply(reply);
      }
      case wire::AdminCommand::NONE:
        break;
    }
    return InvalidArgumentError("unknown admin command " + std::to_string(static_cast<int>(request->command_type())) +
                                " (a newer keylinectl than this KMS?)");
  }

  // What keylinectl needs to finish a plant CA: the CSR and its challenge to check it, then the
  // certificate once installed.
  static json PlantCaJson(const PlantCaSpec& ca) {
    json j = {{"plant", ca.plant}, {"oem", ca.oem}, {"generation", ca.generation},
              {"state", PlantCaStateName(ca.state)}, {"request_id", ca.request_id}, {"key_name", ca.key_name},
              {"requested_at", Rfc3339(ca.requested_at_us)}, {"changed_at", Rfc3339(ca.changed_at_us)},
              {"challenge", ToHex(ca.challenge)}};
    if (!ca.csr.empty()) j["csr"] = ca.csr;
    if (!ca.certificate.empty()) j["certificate"] = ca.certificate;
    if (!ca.revoke_reason.empty()) j["revoke_reason"] = ca.revoke_reason;
    return j;
  }

  static json BudgetJson(const CertificateBudgetSpec& b) {
    return {{"plant", b.plant}, {"oem", b.oem}, {"min", b.min}, {"target", b.target}, {"granted", b.granted},
            {"recorded", b.recorded}, {"outstanding", b.outstanding()}};
  }

  static json ViewJson(const VerificationView& view) {
    return {{"verification_id", view.id}, {"oem", view.oem}, {"requested_at", Rfc3339(view.requested_at_us)},
            {"plants", view.plants}, {"pending", view.pending}, {"complete", view.pending.empty()}};
  }

  StatusOr<std::vector<uint8_t>> Upload(const wire::BatchUpload& upload) {
    const std::string id(schemas::Text(upload.upload_id()));
    if (!IsHexId(id)) return InvalidArgumentError("upload id must be 16 lower-case hex digits");
    std::filesystem::path path = uploads_dir_ / (id + ".part");
    std::error_code ec;
    uint64_t have = std::filesystem::exists(path) ? std::filesystem::file_size(path, ec) : 0;
    if (upload.offset() != have) {
      return FailedPreconditionError("upload " + id + ": piece at offset " + std::to_string(upload.offset()) +
                                     ", expected " + std::to_string(have));
    }
    std::span<const uint8_t> data = schemas::Bytes(upload.data());
    if (have + data.size() > kMaxBatchFileBytes) {
      return ResourceExhaustedError("upload " + id + ": larger than the batch file limit");
    }
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    out.close();
    if (!out) return UnavailableError("upload " + id + ": cannot store the piece");
    return Reply({{"upload_id", id}, {"received", have + data.size()}});
  }

  StatusOr<std::vector<uint8_t>> StartImport(const std::string& actor, const std::string& id) {
    if (!IsHexId(id)) return InvalidArgumentError("upload id must be 16 lower-case hex digits");
    std::lock_guard lock(jobs_mu_);
    if (jobs_.count(id)) return Reply(JobJson(jobs_[id]));
    if (!std::filesystem::exists(uploads_dir_ / (id + ".part"))) {
      return NotFoundError("upload " + id + " does not exist (nothing was uploaded under that id)");
    }
    ImportJob job;
    job.upload_id = id;
    job.actor = actor;
    jobs_[id] = job;
    queue_.push_back(id);
    jobs_cv_.notify_all();
    return Reply(JobJson(job));
  }

  StatusOr<std::vector<uint8_t>> QueryImport(const std::string& id) {
    std::lock_guard lock(jobs_mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return NotFoundError("no import for upload " + id.substr(0, 16));
    return Reply(JobJson(it->second));
  }

  static json JobJson(const ImportJob& job) {
    json j = {{"upload_id", job.upload_id}, {"state", job.state}, {"done", job.done}, {"total", job.total}};
    if (job.state == "imported") {
      j["batch_id"] = job.result.batch_id;
      j["oem"] = job.result.oem;
      j["product"] = job.result.product;
      j["key_sets"] = job.result.key_sets;
      j["added"] = job.result.added;
      j["already_imported"] = job.result.already_imported;
    }
    if (job.state == "failed") {
      j["error"] = job.error.message();
      j["code"] = std::string(StatusCodeName(job.error.code()));
    }
    return j;
  }

  void ImportWorker() {
    while (true) {
      std::string id;
      std::string actor;
      {
        std::unique_lock lock(jobs_mu_);
        jobs_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        id = queue_.front();
        queue_.pop_front();
        jobs_[id].state = "importing";
        actor = jobs_[id].actor;
      }
      std::filesystem::path path = uploads_dir_ / (id + ".part");
      auto result = key_sets_->Import(path, actor, [&](uint64_t done, uint64_t total) {
        std::lock_guard lock(jobs_mu_);
        jobs_[id].done = done;
        jobs_[id].total = total;
      });
      std::error_code ec;
      std::filesystem::remove(path, ec);
      std::lock_guard lock(jobs_mu_);
      ImportJob& job = jobs_[id];
      if (result.ok()) {
        job.state = "imported";
        job.result = *result;
        job.done = job.total = result->key_sets;
      } else {
        job.state = "failed";
        job.error = result.status();
        spdlog::warn("kms: refused batch upload {}: {}", id, result.status().message());
      }
    }
  }

  StatusOr<std::vector<uint8_t>> Fetch(const std::string& actor, const wire::VerificationFetch& fetch) {
    const std::string id(schemas::Text(fetch.verification_id()));
    ASSIGN_OR_RETURN(ExportResult exported, verifications_->Export(id, actor));
    std::filesystem::path path;
    if (fetch.part() == wire::VerificationPart::FILE) {
      path = exported.file;
    } else if (fetch.part() == wire::VerificationPart::SIGNATURE) {
      path = exported.signature;
    } else {
      return InvalidArgumentError("verification fetch: part must be FILE or SIGNATURE");
    }
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(path, ec);
    if (ec) return UnavailableError(path.string() + ": " + ec.message());
    const uint64_t offset = std::min<uint64_t>(fetch.offset(), size);
    const uint64_t count = std::min<uint64_t>({size - offset, fetch.max_bytes(), 512u * 1024});
    std::vector<uint8_t> data(count);
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(count));
    if (!in && count > 0) return UnavailableError(path.string() + ": read failed");
    return Reply({{"verification_id", id}, {"size", size}, {"offset", offset}, {"count", count}}, data);
  }

  // ---- status -------------------------------------------------------------------------------

  StatusOr<std::string> StatusJson() const {
    json status;
    std::map<std::string, uint64_t> kms_stock;
    std::map<std::string, uint64_t> imported;
    std::map<std::string, std::map<std::string, std::map<char, uint64_t>>> tally;  // plant, product, state
    {
      std::unique_ptr<rocksdb::Iterator> it(database_->db()->NewIterator(rocksdb::ReadOptions(), context_.Family(layout::kStock)));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        std::string_view key = it->key().ToStringView();
        ++kms_stock[std::string(key.substr(0, key.find('\0')))];
      }
      std::unique_ptr<rocksdb::Iterator> sh(database_->db()->NewIterator(rocksdb::ReadOptions(), context_.Family(layout::kShipped)));
      for (sh->SeekToFirst(); sh->Valid(); sh->Next()) {
        std::string_view key = sh->key().ToStringView();
        size_t a = key.find('\0');
        size_t b = key.find('\0', a + 1);
        if (a == std::string_view::npos || b == std::string_view::npos || b + 1 >= key.size()) continue;
        ++tally[std::string(key.substr(0, a))][std::string(key.substr(a + 1, b - a - 1))][key[b + 1]];
      }
      std::unique_ptr<rocksdb::Iterator> bt(database_->db()->NewIterator(rocksdb::ReadOptions(), context_.Family(layout::kBatches)));
      for (bt->SeekToFirst(); bt->Valid(); bt->Next()) {
        const std::string copy = bt->value().ToString();  // aligned for FlatBuffers; blocks are not
        auto batch = schemas::DecodeVerified<wire::KmsBatch>(AsBytes(copy), "batch record");
        if (batch.ok() && (*batch)->state() == wire::BatchState::IMPORTED) {
          imported[std::string(schemas::Text((*batch)->product()))] += (*batch)->key_sets();
        }
      }
    }
    json alerts = json::array();
    {
      std::unique_ptr<rocksdb::Iterator> it(database_->db()->NewIterator(rocksdb::ReadOptions(), context_.Family(layout::kMeta)));
      for (it->Seek("alert/"); it->Valid() && it->key().starts_with("alert/"); it->Next()) {
        alerts.push_back(it->value().ToString());
      }
    }
    json products = json::array();
    for (const ProductSpec& p : catalog_->Products()) {
      uint64_t shipped = 0, injected = 0, burned = 0;
      for (const auto& [plant, per_product] : tally) {
        auto it = per_product.find(p.name);
        if (it == per_product.end()) continue;
        auto get = [&](char c) { auto s = it->second.find(c); return s == it->second.end() ? 0 : s->second; };
        shipped += get('S');
        injected += get('I');
        burned += get('B');
      }
      const uint64_t in_stock = kms_stock[p.name];
      json slots = json::array();
      for (const SlotSpec& slot : p.slots) {
        slots.push_back({{"slot", slot.slot}, {"auth_slot", slot.auth_slot}, {"counter", slot.counter}, {"flags", slot.flags}});
      }
      products.push_back({{"product", p.name}, {"oem", p.oem}, {"imported", imported[p.name]},
                          {"kms_stock", in_stock}, {"shipped_in_plants", shipped}, {"injected", injected},
                          {"burned", burned}, {"min_stock", p.min_stock}, {"target_stock", p.target_stock},
                          {"counts_conserved", imported[p.name] == in_stock + shipped + injected + burned},
                          {"slots", slots}});
      if (p.certificate) {
        products.back()["certificate_slot"] = {
            {"name", p.certificate->name}, {"organization", p.certificate->organization},
            {"organizational_unit", p.certificate->organizational_unit},
            {"common_name", p.certificate->common_name}, {"validity_days", p.certificate->validity_days},
            {"key_usage", p.certificate->key_usage}, {"extended_key_usage", p.certificate->extended_key_usage}};
      }
    }
    std::map<std::string, uint64_t> outbox;
    for (const auto& q : store_->OutboxStats()) outbox[q.queue.peer] += q.depth();
    auto record_counters = records_->Counters();
    // Issuing budgets as the KMS granted them; a plant with an issuing CA and no grant yet shows
    // its policy with nothing granted.
    std::map<std::string, std::map<std::string, json>> budgets_by_plant;
    for (const CertificateBudgetSpec& b : budgets_->All()) budgets_by_plant[b.plant][b.oem] = BudgetJson(b);
    std::map<std::string, json> cas_by_plant;
    for (const PlantCaSpec& ca : plant_cas_->All()) {
      if (ca.state == PlantCaState::kActive && !budgets_by_plant[ca.plant].contains(ca.oem)) {
        CertificateBudgetSpec none;
        none.plant = ca.plant;
        none.oem = ca.oem;
        budgets_by_plant[ca.plant][ca.oem] = BudgetJson(none);
      }
      cas_by_plant[ca.plant].push_back({{"oem", ca.oem}, {"generation", ca.generation},
                                        {"state", PlantCaStateName(ca.state)}, {"request_id", ca.request_id}});
    }
    json plants = json::array();
    std::lock_guard lock(status_mu_);
    for (const PlantSpec& plant : catalog_->Plants()) {
      json entry = {{"plant", plant.plant}, {"config_version_queued", plant.config_version}};
      auto contact = last_contact_.find(plant.plant);
      entry["last_contact"] = contact == last_contact_.end() ? json(nullptr) : json(Rfc3339(contact->second));
      uint64_t acked_version = 0;
      json stock = json::array();
      // The plant's last PlantStatus, read once for its stock and its issuing budgets.
      const wire::PlantStatus* reported = nullptr;
      if (auto it = plant_status_.find(plant.plant); it != plant_status_.end()) {
        auto decoded = schemas::DecodeMessage<wire::PlantStatus>(AsBytes(it->second));
        if (decoded.ok()) reported = *decoded;
      }
      if (reported != nullptr) {
        acked_version = reported->config_version();
        if (reported->stock()) {
          for (const auto* s : *reported->stock()) {
            std::string name(schemas::Text(s->product()));
            auto product = catalog_->Product(name);
            const uint64_t min_stock = product ? product->min_stock : 0;
            stock.push_back({{"product", name}, {"in_stock", s->in_stock()}, {"reserved", s->reserved()},
                             {"requested", s->requested()}, {"injected", s->injected()}, {"burned", s->burned()},
                             {"min_stock", min_stock}, {"target_stock", product ? product->target_stock : 0}});
            if (s->in_stock() < min_stock) {
              alerts.push_back(plant.plant + ": " + name + " stock " + std::to_string(s->in_stock()) +
                               " is below its minimum " + std::to_string(min_stock));
            }
          }
        }
      }
      entry["config_version_acknowledged"] = acked_version;
      // The plant's own view of its budgets, from its last PlantStatus.
      std::map<std::string, json>& budgets = budgets_by_plant[plant.plant];
      if (reported != nullptr && reported->certificate_budgets()) {
        for (const auto* b : *reported->certificate_budgets()) {
          const std::string oem(schemas::Text(b->oem()));
          const uint64_t held = b->issued() + b->pending();
          const uint64_t available = b->granted() > held ? b->granted() - held : 0;
          json& budget = budgets[oem];
          if (budget.is_null()) budget = {{"plant", plant.plant}, {"oem", oem}};
          budget["at_plant"] = {{"granted", b->granted()}, {"issued", b->issued()}, {"pending", b->pending()},
                                {"available", available}, {"requested", b->requested()}};
          if (available == 0) {
            alerts.push_back(plant.plant + ": issuing budget of " + oem + " is spent (" +
                             std::to_string(b->granted()) + " granted, " + std::to_string(b->issued()) +
                             " issued): no certificates until the KMS grants more");
          }
        }
      }
      entry["certificate_budgets"] = json::array();
      for (auto& [oem, budget] : budgets) entry["certificate_budgets"].push_back(budget);
      entry["stock"] = stock;
      uint64_t shipped = 0, injected = 0, burned = 0;
      for (const auto& [product, states] : tally[plant.plant]) {
        for (const auto& [state, n] : states) {
          (state == 'S' ? shipped : state == 'I' ? injected : burned) += n;
        }
      }
      entry["key_sets_at_plant"] = shipped;
      entry["injected"] = injected;
      entry["burned"] = burned;
      const RecordCounters rc = record_counters[plant.plant];
      entry["records_received"] = rc.applied;
      entry["records_duplicate"] = rc.duplicates;
      entry["records_refused"] = rc.refused;
      entry["messages_waiting"] = outbox[plant.plant];
      entry["issuing_cas"] = cas_by_plant.contains(plant.plant) ? cas_by_plant[plant.plant] : json::array();
      if (rc.refused > 0) {
        alerts.push_back(plant.plant + ": " + std::to_string(rc.refused) + " injection records refused (see the log)");
      }
      plants.push_back(entry);
    }
    json pending = json::array();
    for (const VerificationView& v : verifications_->List()) {
      if (!v.pending.empty()) pending.push_back({{"verification_id", v.id}, {"oem", v.oem}, {"pending", v.pending}});
    }
    json imports = json::array();
    {
      std::lock_guard jobs_lock(jobs_mu_);
      for (const auto& [id, job] : jobs_) {
        if (job.state == "queued" || job.state == "importing") imports.push_back(JobJson(job));
      }
    }
    status["kms"] = {{"import_key", ToHex(context_.import_public.bytes)},
                     {"signing_key", ToHex(context_.signing_public.bytes)},
                     {"curve_key", broker::CurvePublicKeyToZ85(curve_keys_.public_key())}};
    status["plants"] = plants;
    status["products"] = products;
    status["verifications_pending"] = pending;
    status["imports_running"] = imports;
    status["alerts"] = alerts;
    return status.dump();
  }

  KmsOptions options_;
  std::unique_ptr<hsm::KeyCustody> custody_;
  broker::CurveKeyPair curve_keys_;
  std::unique_ptr<broker::Database> database_;
  std::unique_ptr<broker::MessageStore> store_;
  KmsContext context_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<PlantCas> plant_cas_;
  std::unique_ptr<CertificateBudgets> budgets_;
  std::unique_ptr<KeySetStore> key_sets_;
  std::unique_ptr<Allocator> allocator_;
  std::unique_ptr<RecordIngest> records_;
  std::unique_ptr<Verifications> verifications_;
  broker::PeerRegistry plant_peers_;
  broker::PeerRegistry admin_peers_;
  std::unique_ptr<broker::LinkServer> link_;
  std::unique_ptr<broker::RpcServer> rpc_;
  std::filesystem::path uploads_dir_;

  mutable std::mutex status_mu_;
  std::map<std::string, int64_t> last_contact_;
  std::map<std::string, std::string> plant_status_;

  mutable std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::map<std::string, ImportJob> jobs_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

Kms::Kms(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Kms::~Kms() = default;

StatusOr<std::unique_ptr<Kms>> Kms::Open(KmsOptions options, std::unique_ptr<hsm::KeyCustody> custody) {
  if (options.data_dir.empty()) return InvalidArgumentError("KMS data_dir is required");
  if (!custody) return InvalidArgumentError("KMS needs a key custody");
  auto impl = std::make_unique<Impl>(std::move(options), std::move(custody));
  RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<Kms>(new Kms(std::move(impl)));
}

Status Kms::Serve() { return impl_->Serve(); }
std::string Kms::link_endpoint() const { return impl_->link_ ? impl_->link_->endpoint() : ""; }
std::string Kms::admin_endpoint() const { return impl_->rpc_ ? impl_->rpc_->endpoint() : ""; }
hsm::PublicKey Kms::import_public_key() const { return impl_->context_.import_public; }
hsm::PublicKey Kms::signing_public_key() const { return impl_->context_.signing_public; }
broker::CurvePublicKey Kms::curve_public_key() const { return impl_->curve_keys_.public_key(); }

StatusOr<std::vector<uint8_t>> Kms::HandleAdmin(const std::string& peer, std::span<const uint8_t> request) {
  return impl_->HandleAdmin(peer, request);
}
StatusOr<ImportResult> Kms::ImportBatchFile(const std::filesystem::path& path, const std::string& actor,
                                            const ImportProgressFn& progress) {
  return impl_->key_sets_->Import(path, actor, progress);
}
StatusOr<AuditReport> Kms::VerifyAudit() const { return impl_->audit_->Verify(); }
StatusOr<ExportResult> Kms::ExportInjected(const std::string& oem, const std::filesystem::path& out) {
  return impl_->verifications_->WriteExport(oem, out);
}
StatusOr<std::string> Kms::StatusJson() const { return impl_->StatusJson(); }

Status Kms::ApplyFromPlant(const std::string& plant, uint16_t message_type,
                           std::span<const std::vector<uint8_t>> payloads) {
  const auto type = static_cast<wire::MessageType>(message_type);
  for (const auto& payload : payloads) RETURN_IF_ERROR(schemas::VerifyPayload(type, payload));
  return impl_->store_->Commit([&](broker::WriteContext& write) -> Status {
    for (const auto& payload : payloads) {
      broker::Delivery delivery;
      delivery.peer = plant;
      delivery.stream = type == wire::MessageType::StockRequest || type == wire::MessageType::PlantStatus
                            ? "control"
                            : "records";
      delivery.type = type;
      delivery.payload = payload;
      Status applied = impl_->Deliver(delivery, write);
      if (!applied.ok()) return applied;
    }
    return Status::Ok();
  });
}

}  // namespace keyline::kms

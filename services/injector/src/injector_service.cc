#include "keyline/injector/injector_service.h"

#include <algorithm>
#include <atomic>

#include "keyline/broker/curve_keys.h"
#include "keyline/broker/database.h"
#include "keyline/broker/link.h"
#include "keyline/broker/message_store.h"
#include "keyline/broker/peer_registry.h"
#include "keyline/broker/queue_inspector.h"
#include "keyline/broker/rpc.h"
#include "keyline/common/log.h"
#include "keyline/hsm/she.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/eol_generated.h"
#include "journal.h"
#include "provisioner.h"

namespace keyline::injector {
namespace {

// The identity the EOL tester's key maps to at the local endpoint.
constexpr char kTesterIdentity[] = "eol-tester";

// The tester's key pair: created on the agent's first start, so that the tester (and
// `keyline-injector provision`) on this host can call it.
StatusOr<broker::CurveKeyPair> TesterKeys(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return broker::CurveKeyPair::Load(path);
  ASSIGN_OR_RETURN(broker::CurveKeyPair keys, broker::CurveKeyPair::Generate());
  RETURN_IF_ERROR(keys.Save(path));
  spdlog::info("created the EOL tester's key pair {}", path.string());
  return keys;
}

// One EolRequest in, one EolReply out. A malformed request is an error naming the field.
StatusOr<std::vector<uint8_t>> HandleEolCall(InjectorService& agent,
                                             std::span<const uint8_t> request_bytes) {
  ASSIGN_OR_RETURN(const wire::EolRequest* request,
                   schemas::DecodeVerified<wire::EolRequest>(request_bytes, "EolRequest"));
  if (request->op() != wire::EolOp::PROVISION) {
    return InvalidArgumentError("EolRequest.op: " +
                                std::to_string(static_cast<int>(request->op())) +
                                " is not PROVISION");
  }
  RETURN_IF_ERROR(schemas::CheckFixedBytes(request->ecu_uid(), schemas::kEcuUidBytes,
                                           "EolRequest.ecu_uid"));
  EcuUid uid{};
  std::copy_n(request->ecu_uid()->data(), uid.size(), uid.begin());
  if (hsm::IsWildcardUid(uid)) return InvalidArgumentError("EolRequest.ecu_uid: all zero");
  std::string product(schemas::Text(request->product()));
  if (product.empty()) return InvalidArgumentError("EolRequest.product: missing");
  return EncodeEolReply(agent.Provision(uid, product));
}

class InjectorServiceImpl final : public InjectorService {
 public:
  explicit InjectorServiceImpl(InjectorConfig config) : config_(std::move(config)) {}

  ~InjectorServiceImpl() override {
    eol_server_.reset();   // no new calls
    pks_client_.reset();   // no more deliveries
    provisioner_.reset();
    ecu_.reset();
    store_.reset();
    database_.reset();
  }

  Status Init() {
    ASSIGN_OR_RETURN(broker::CurveKeyPair keys, broker::CurveKeyPair::Load(config_.curve_key_file));
    ASSIGN_OR_RETURN(broker::CurvePublicKey pks_key,
                     broker::LoadCurvePublicKeyFile(config_.pks_public_key_file));
    ASSIGN_OR_RETURN(broker::CurvePublicKey ecu_key,
                     broker::LoadCurvePublicKeyFile(config_.ecu_public_key_file));
    ASSIGN_OR_RETURN(broker::CurveKeyPair tester, TesterKeys(config_.tester_curve_key_file));
    RETURN_IF_ERROR(testers_.Add(tester.public_key(), kTesterIdentity));

    ASSIGN_OR_RETURN(database_, broker::Database::Open({.path = config_.data_dir / "db",
                                                        .column_families = {kJournalFamily}}));
    ASSIGN_OR_RETURN(store_, broker::MessageStore::Open(database_.get(),
                                                        {.self = config_.station_id}));
    journal_ = std::make_unique<Journal>(database_.get());
    ASSIGN_OR_RETURN(ecu_, ConnectSimulatorEcuLink({.endpoint = config_.ecu_endpoint,
                                                    .server_key = ecu_key,
                                                    .keys = keys}));
    ProvisionerOptions options;
    options.station = config_.station_id;
    options.plant = config_.plant_id;
    options.load.answer_timeout = std::chrono::milliseconds(config_.load_timeout_ms);
    options.load.attempts = config_.load_attempts;
    options.package_timeout = std::chrono::milliseconds(config_.package_timeout_ms);
    options.ack_wait = std::chrono::milliseconds(config_.ack_wait_ms);
    provisioner_ = std::make_unique<Provisioner>(store_.get(), journal_.get(), ecu_.get(), options);

    broker::LinkOptions link;
    link.heartbeat_timeout_ms = config_.heartbeat_timeout_ms;
    link.heartbeat_interval_ms = std::max(100, config_.heartbeat_timeout_ms / 5);
    ASSIGN_OR_RETURN(
        pks_client_,
        broker::LinkClient::Start(
            store_.get(),
            [this](const broker::Delivery& delivery, broker::WriteContext& write) {
              return provisioner_->OnDelivery(delivery, write);
            },
            {.server_endpoint = config_.pks_endpoint,
             .server_key = pks_key,
             .server_name = config_.plant_id,
             .keys = keys,
             .link = link}));

    ASSIGN_OR_RETURN(eol_server_,
                     broker::RpcServer::Start(
                         [this](const std::string&, std::span<const uint8_t> request) {
                           return HandleEolCall(*this, request);
                         },
                         {.bind_endpoint = config_.eol_endpoint,
                          .keys = keys,
                          .peers = &testers_,
                          .max_frame_bytes = 4096}));
    spdlog::info("station {} of {}: PKS {}, ECU link {}, EOL endpoint {}", config_.station_id,
                 config_.plant_id, config_.pks_endpoint, config_.ecu_endpoint,
                 eol_server_->endpoint());
    return Status::Ok();
  }

  std::string eol_endpoint() const override { return eol_server_->endpoint(); }

  ProvisionOutcome Provision(const EcuUid& uid, const std::string& product) override {
    return provisioner_->Provision(uid, product);
  }

  InjectorSnapshot Snapshot() const override {
    InjectorSnapshot snapshot;
    snapshot.station = config_.station_id;
    snapshot.plant = config_.plant_id;
    if (auto counts = journal_->Count(); counts.ok()) {
      snapshot.provisioned = counts->provisioned;
      snapshot.failed = counts->failed;
      snapshot.pending = counts->pending;
    }
    for (const auto& queue : store_->OutboxStats()) snapshot.messages_queued += queue.depth();
    snapshot.pks_connected = pks_client_->connected();
    return snapshot;
  }

 private:
  InjectorConfig config_;
  broker::PeerRegistry testers_;
  std::unique_ptr<broker::Database> database_;
  std::unique_ptr<broker::MessageStore> store_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<EcuLink> ecu_;
  std::unique_ptr<Provisioner> provisioner_;
  std::unique_ptr<broker::LinkClient> pks_client_;
  std::unique_ptr<broker::RpcServer> eol_server_;
};

// "tcp://0.0.0.0:7400" is where the agent binds; a caller on this host dials loopback.
std::string DialableEndpoint(std::string endpoint) {
  for (std::string_view any : {"tcp://0.0.0.0:", "tcp://*:"}) {
    if (endpoint.rfind(any, 0) == 0) {
      return "tcp://127.0.0.1:" + endpoint.substr(any.size());
    }
  }
  return endpoint;
}

}  // namespace

StatusOr<std::unique_ptr<InjectorService>> InjectorService::Start(const InjectorConfig& config) {
  auto service = std::make_unique<InjectorServiceImpl>(config);
  RETURN_IF_ERROR(service->Init());
  return std::unique_ptr<InjectorService>(std::move(service));
}

StatusOr<InjectorSnapshot> ReadInjectorStatus(const InjectorConfig& config) {
  std::filesystem::path db_dir = config.data_dir / "db";
  std::error_code ec;
  if (!std::filesystem::exists(db_dir / "CURRENT", ec)) {
    return NotFoundError(config.data_dir.string() +
                         " holds no injector database (has the agent ever run?)");
  }
  InjectorSnapshot snapshot;
  snapshot.station = config.station_id;
  snapshot.plant = config.plant_id;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<broker::Database> database,
                     broker::Database::Open({.path = db_dir, .secondary = true}));
    RETURN_IF_ERROR(database->CatchUp());
    if (database->HasFamily(kJournalFamily)) {
      ASSIGN_OR_RETURN(JournalCounts counts, Journal(database.get()).Count());
      snapshot.provisioned = counts.provisioned;
      snapshot.failed = counts.failed;
      snapshot.pending = counts.pending;
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<broker::QueueInspector> inspector,
                   broker::QueueInspector::Open(config.data_dir));
  ASSIGN_OR_RETURN(std::vector<broker::OutboundQueueView> outbound, inspector->Outbound());
  for (const auto& queue : outbound) {
    snapshot.messages_queued += queue.depth;
    if (queue.queue.peer != config.plant_id) continue;
    snapshot.pks_last_contact_us = std::max(snapshot.pks_last_contact_us, queue.link.last_contact_us);
    if (!queue.link.last_error.empty()) snapshot.pks_last_error = queue.link.last_error;
  }
  ASSIGN_OR_RETURN(std::vector<broker::InboundStreamView> inbound, inspector->Inbound());
  for (const auto& stream : inbound) {
    if (stream.from.peer != config.plant_id) continue;
    snapshot.pks_last_contact_us = std::max(snapshot.pks_last_contact_us, stream.link.last_contact_us);
  }
  return snapshot;
}

StatusOr<ProvisionOutcome> CallProvision(const InjectorConfig& config, const EcuUid& uid,
                                         const std::string& product, int timeout_ms) {
  std::error_code ec;
  if (!std::filesystem::exists(config.tester_curve_key_file, ec)) {
    return NotFoundError(config.tester_curve_key_file.string() +
                         ": no EOL tester key yet (the agent creates it on its first start)");
  }
  ASSIGN_OR_RETURN(broker::CurveKeyPair tester,
                   broker::CurveKeyPair::Load(config.tester_curve_key_file));
  // The agent's key pair file also holds its public key, which is all a caller needs.
  ASSIGN_OR_RETURN(broker::CurvePublicKey agent_key,
                   broker::LoadCurvePublicKeyFile(config.curve_key_file));
  ASSIGN_OR_RETURN(std::unique_ptr<broker::RpcClient> client,
                   broker::RpcClient::Connect({.server_endpoint = DialableEndpoint(config.eol_endpoint),
                                               .server_key = agent_key,
                                               .keys = tester}));
  flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Finish(wire::CreateEolRequest(fbb, wire::EolOp::PROVISION,
                                    fbb.CreateVector(uid.data(), uid.size()),
                                    fbb.CreateString(product)));
  auto reply = client->Call(std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()),
                            timeout_ms);
  if (!reply.ok()) {
    if (reply.status().code() == StatusCode::kDeadlineExceeded) {
      return DeadlineExceededError("no answer from the injector agent at " + config.eol_endpoint +
                                   " within " + std::to_string(timeout_ms) +
                                   " ms (is it running?)");
    }
    return reply.status();
  }
  return DecodeEolReply(*reply);
}

}  // namespace keyline::injector

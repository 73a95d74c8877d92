#include "provisioner.h"

#include <algorithm>
#include <random>
#include <thread>

#include "keyline/broker/message_store.h"
#include "keyline/broker/link.h"
#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/hsm/she.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/pks_injector_generated.h"
#include "certificate_step.h"

namespace keyline::injector {
namespace {

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the PKS sent must fit this ECU and product, and every slot must be loadable.
Status CheckPackage(const wire::KeyPackage& package, const EcuUid& uid,
                    const std::string& product) {
  RETURN_IF_ERROR(schemas::CheckFixedBytes(package.ecu_uid(), schemas::kEcuUidBytes,
                                           "KeyPackage.ecu_uid"));
  if (!std::equal(uid.begin(), uid.end(), package.ecu_uid()->data())) {
    return InvalidArgumentError("KeyPackage is for ECU " + ToHex(schemas::Bytes(package.ecu_uid())) +
                                ", not " + ToHex(uid));
  }
  if (schemas::Text(package.product()) != product) {
    return InvalidArgumentError("KeyPackage is for product \"" +
                                std::string(schemas::Text(package.product())) + "\", not \"" +
                                product + "\"");
  }
  if (package.package_id() == nullptr || package.package_id()->size() == 0) {
    return InvalidArgumentError("KeyPackage.package_id: missing");
  }
  if (package.slots() == nullptr || package.slots()->size() == 0) {
    return InvalidArgumentError("KeyPackage.slots: missing");
  }
  if (const wire::CertificateChallenge* certificate = package.certificate()) {
    if (schemas::Text(certificate->slot()).empty()) {
      return InvalidArgumentError("KeyPackage.certificate.slot: missing");
    }
    RETURN_IF_ERROR(schemas::CheckFixedBytes(certificate->challenge(),
                                             schemas::kCertificateChallengeBytes,
                                             "KeyPackage.certificate.challenge"));
  }
  for (const wire::PackageSlot* slot : *package.slots()) {
    if (slot->slot() > hsm::kSheMaxSlot) {
      return InvalidArgumentError("KeyPackage slot " + std::to_string(slot->slot()) +
                                  " is not a SHE slot");
    }
    RETURN_IF_ERROR(schemas::CheckFixedBytes(slot->m1(), schemas::kM1Bytes, "PackageSlot.m1"));
    RETURN_IF_ERROR(schemas::CheckFixedBytes(slot->m2(), schemas::kM2Bytes, "PackageSlot.m2"));
    RETURN_IF_ERROR(schemas::CheckFixedBytes(slot->m3(), schemas::kM3Bytes, "PackageSlot.m3"));
  }
  return Status::Ok();
}

std::vector<uint8_t> BuildResult(const wire::KeyPackage& package, const EcuUid& uid,
                                 const std::vector<LoadedSlot>& slots, uint16_t attempts,
                                 const std::optional<CertificateStep>& certificate) {
  flatbuffers::FlatBufferBuilder fbb(512);
  std::vector<flatbuffers::Offset<wire::ResultSlot>> results;
  for (const LoadedSlot& slot : slots) {
    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> m4 = 0, m5 = 0;
    if (slot.m4 && slot.m5) {
      m4 = schemas::CreateBytes(fbb, *slot.m4);
      m5 = schemas::CreateBytes(fbb, *slot.m5);
    }
    results.push_back(wire::CreateResultSlot(fbb, slot.outcome.slot, m4, m5,
                                             static_cast<wire::EcuError>(slot.outcome.error),
                                             slot.outcome.attempts));
  }
  flatbuffers::Offset<wire::CertificateResult> certificate_result = 0;
  if (certificate) {
    const CertificateOutcome& c = certificate->outcome;
    certificate_result = wire::CreateCertificateResult(
        fbb, fbb.CreateString(c.slot), static_cast<wire::EcuError>(c.error),
        certificate->confirmation.empty() ? 0 : schemas::CreateBytes(fbb, certificate->confirmation),
        fbb.CreateString(c.detail));
  }
  fbb.Finish(wire::CreateInjectionResult(
      fbb, fbb.CreateString(schemas::Text(package.package_id())), schemas::CreateBytes(fbb, uid),
      fbb.CreateVector(results), attempts, NowUs(), certificate_result));
  std::span<const uint8_t> bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

// "PROVISIONED", or the failing slot's code, with a line for the tester's screen.
void Judge(const std::vector<LoadedSlot>& slots, ProvisionOutcome& out) {
  for (const LoadedSlot& slot : slots) out.slots.push_back(slot.outcome);
  for (const LoadedSlot& slot : slots) {
    if (slot.outcome.error == EcuError::kNone) continue;
    out.outcome = std::string(EcuErrorName(slot.outcome.error));
    out.message = "slot " + std::to_string(slot.outcome.slot) + " (" +
                  std::string(hsm::SheSlotName(slot.outcome.slot)) + "): " + out.outcome +
                  " after " + std::to_string(slot.outcome.attempts) + " attempt(s); key set " +
                  out.key_set_id + " is burned, the ECU needs a supervisor decision";
    return;
  }
  out.outcome = kOutcomeProvisioned;
  out.message = std::to_string(slots.size()) + " slots loaded and proven (key set " +
                out.key_set_id + ")";
}

// The certificate slot's verdict on top of the SHE slots' (which were all proven).
void JudgeCertificate(const CertificateOutcome& certificate, ProvisionOutcome& out) {
  out.certificate = certificate;
  if (certificate.error == EcuError::kNone) {
    out.message += "; certificate slot " + certificate.slot + " issued, stored and confirmed";
    return;
  }
  out.outcome = std::string(EcuErrorName(certificate.error));
  out.message = "certificate slot " + certificate.slot + ": " + out.outcome + " (" +
                certificate.detail + "); key set " + out.key_set_id +
                " is burned, the ECU needs a supervisor decision";
}

std::string CertificateKey(std::string_view package_id) {
  return "certificate/" + std::string(package_id);
}

std::string SessionTag() {
  std::random_device random;
  std::uniform_int_distribution<uint32_t> pick;
  char tag[9];
  std::snprintf(tag, sizeof(tag), "%08x", pick(random));
  return tag;
}

}  // namespace

Provisioner::Provisioner(broker::MessageStore* store, const Journal* journal, EcuLink* ecu,
                         ProvisionerOptions options)
    : store_(store), journal_(journal), ecu_(ecu), options_(std::move(options)) {
  ack_listener_ = store_->AddAckListener([this](const broker::QueueId& queue, uint64_t) {
    if (queue.peer != options_.plant || queue.stream != kRequestsStream) return;
    std::lock_guard lock(mu_);
    arrived_cv_.notify_all();
  });
}

Provisioner::~Provisioner() { store_->RemoveAckListener(ack_listener_); }

Status Provisioner::OnDelivery(const broker::Delivery& delivery, broker::WriteContext& write) {
  if (delivery.peer != options_.plant) {
    return PermissionDeniedError("message from \"" + delivery.peer + "\", not the PKS of " +
                                 options_.plant);
  }
  if (delivery.type == wire::MessageType::CertificateIssued) {
    ASSIGN_OR_RETURN(const wire::CertificateIssued* issued,
                     schemas::DecodeMessage<wire::CertificateIssued>(delivery.payload));
    std::string key = CertificateKey(schemas::Text(issued->package_id()));
    std::lock_guard lock(mu_);
    if (awaited_.count(key) != 0) {
      arrived_[key].assign(delivery.payload.begin(), delivery.payload.end());
      arrived_cv_.notify_all();
    }
    return Status::Ok();  // a late answer nobody waits for: the next ask gets the same one
  }
  if (delivery.type != wire::MessageType::KeyPackage) {
    return InvalidArgumentError("unexpected " +
                                std::string(wire::EnumNameMessageType(delivery.type)) +
                                " from the PKS");
  }
  ASSIGN_OR_RETURN(const wire::KeyPackage* package,
                   schemas::DecodeMessage<wire::KeyPackage>(delivery.payload));
  std::string request_id(schemas::Text(package->request_id()));
  if (package->error() == nullptr &&
      schemas::CheckFixedBytes(package->ecu_uid(), schemas::kEcuUidBytes, "").ok()) {
    // Journal the package so that a call that gave up, or a restart, finds it.
    EcuUid uid{};
    std::copy_n(package->ecu_uid()->data(), uid.size(), uid.begin());
    std::string product(schemas::Text(package->product()));
    ASSIGN_OR_RETURN(std::optional<JournalEntry> entry, journal_->Get(product, uid));
    if (!entry) {
      JournalEntry fresh;
      fresh.package.assign(delivery.payload.begin(), delivery.payload.end());
      journal_->Put(write.batch(), product, uid, fresh);
    }
  }
  std::lock_guard lock(mu_);
  if (awaited_.count(request_id) != 0) {
    arrived_[request_id].assign(delivery.payload.begin(), delivery.payload.end());
    arrived_cv_.notify_all();
  }
  return Status::Ok();
}

ProvisionOutcome Provisioner::Provision(const EcuUid& uid, const std::string& product) {
  std::lock_guard call(call_mu_);
  ProvisionOutcome out;
  out.product = product;
  out.ecu_uid = uid;
  out.station = options_.station;
  out.plant = options_.plant;
  if (product.empty() || hsm::IsWildcardUid(uid)) {
    out.outcome = kOutcomeBadRequest;
    out.message = product.empty() ? "no product given" : "the all-zero UID is not an ECU";
    return out;
  }
  auto entry = journal_->Get(product, uid);
  if (!entry.ok()) {
    out.outcome = kOutcomeInternal;
    out.message = entry.status().message();
    return out;
  }
  if (*entry && (*entry)->reported) {
    auto earlier = DecodeEolReply((*entry)->reply);
    if (!earlier.ok()) {
      out.outcome = kOutcomeInternal;
      out.message = "journal entry unreadable: " + earlier.status().message();
      return out;
    }
    earlier->repeated = true;
    earlier->report = ReportState((*entry)->result_sequence);
    return *earlier;
  }
  std::vector<uint8_t> package = PackageFor(uid, product, *entry, out);
  if (package.empty()) return out;
  uint16_t attempts = *entry ? (*entry)->attempts : 0;
  return LoadAndReport(uid, product, std::move(package), attempts, std::move(out));
}

std::vector<uint8_t> Provisioner::PackageFor(const EcuUid& uid, const std::string& product,
                                             const std::optional<JournalEntry>& entry,
                                             ProvisionOutcome& out) {
  std::vector<uint8_t> bytes = entry ? entry->package : FetchPackage(uid, product, out);
  if (bytes.empty()) return bytes;
  auto package = schemas::DecodeMessage<wire::KeyPackage>(bytes);
  if (!package.ok()) {
    out.outcome = kOutcomeInternal;
    out.message = package.status().message();
    return {};
  }
  out.package_id = std::string(schemas::Text((*package)->package_id()));
  out.key_set_id = std::string(schemas::Text((*package)->key_set_id()));
  if (const wire::PackageError* error = (*package)->error()) {
    std::string_view code = wire::EnumNamePackageErrorCode(error->code());
    out.outcome = code.empty() ? "UNSPECIFIED" : std::string(code);
    out.message = std::string(schemas::Text(error->message()));
    return {};
  }
  if (Status fits = CheckPackage(**package, uid, product); !fits.ok()) {
    out.outcome = kOutcomeInternal;
    out.message = "the PKS sent an unusable package: " + fits.message();
    spdlog::error("ECU {}: {}", ToHex(uid), out.message);
    return {};
  }
  return bytes;
}

std::vector<uint8_t> Provisioner::FetchPackage(const EcuUid& uid, const std::string& product,
                                               ProvisionOutcome& out) {
  static const std::string session = SessionTag();
  std::string request_id =
      options_.station + "-" + session + "-" + std::to_string(++request_counter_);
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(wire::CreateKeyPackageRequest(fbb, fbb.CreateString(request_id),
                                           fbb.CreateString(options_.station),
                                           fbb.CreateString(product),
                                           schemas::CreateBytes(fbb, uid)));
  auto answer = SendAndWait(request_id, [&](broker::WriteContext& write) {
    return write.Send({options_.plant, kRequestsStream}, wire::MessageType::KeyPackageRequest,
                      schemas::FinishedBytes(fbb))
        .status();
  });
  std::vector<uint8_t> package = answer.ok() ? std::move(*answer) : std::vector<uint8_t>();
  if (!answer.ok()) {
    out.outcome = kOutcomeInternal;
    out.message = "cannot queue the request for the PKS: " + answer.status().message();
  } else if (package.empty()) {
    out.outcome = kOutcomePksUnreachable;
    out.message = "no key package from the PKS of " + options_.plant + " within " +
                  std::to_string(options_.package_timeout.count()) +
                  " ms; the request stays queued, ask again";
  }
  return package;
}

StatusOr<std::vector<uint8_t>> Provisioner::SendAndWait(
    const std::string& key, const std::function<Status(broker::WriteContext&)>& send) {
  {
    std::lock_guard lock(mu_);
    awaited_.insert(key);
  }
  Status queued = store_->Commit(send);
  std::vector<uint8_t> answer;
  std::unique_lock lock(mu_);
  if (queued.ok()) {
    arrived_cv_.wait_for(lock, options_.package_timeout, [&] { return arrived_.count(key) != 0; });
    if (auto it = arrived_.find(key); it != arrived_.end()) answer = std::move(it->second);
  }
  awaited_.erase(key);
  arrived_.erase(key);
  if (!queued.ok()) return queued;
  return answer;
}

ProvisionOutcome Provisioner::LoadAndReport(const EcuUid& uid, const std::string& product,
                                            std::vector<uint8_t> package_bytes,
                                            uint16_t attempts, ProvisionOutcome out) {
  const wire::KeyPackage* package = flatbuffers::GetRoot<wire::KeyPackage>(package_bytes.data());
  // Count the attempt before the first load reaches the ECU: after a crash the next call
  // knows loads may have landed.
  JournalEntry entry;
  entry.package = package_bytes;
  entry.attempts = static_cast<uint16_t>(attempts + 1);
  Status counted = store_->Commit([&](broker::WriteContext& write) {
    journal_->Put(write.batch(), product, uid, entry);
    return Status::Ok();
  });
  if (!counted.ok()) {
    out.outcome = kOutcomeInternal;
    out.message = "cannot journal the attempt, nothing loaded: " + counted.message();
    return out;
  }

  std::vector<LoadedSlot> slots = LoadPackage(*ecu_, uid, *package, options_.load);
  Judge(slots, out);
  std::optional<CertificateStep> certificate;
  if (package->certificate() != nullptr) {
    if (out.provisioned()) {
      std::string key = CertificateKey(schemas::Text(package->package_id()));
      certificate = RunCertificateSlot(
          *ecu_, uid, *package, options_.load, [&](std::span<const uint8_t> request) {
            return SendAndWait(key, [&](broker::WriteContext& write) {
              return write.Send({options_.plant, kRequestsStream},
                                wire::MessageType::CertificateRequest, request)
                  .status();
            });
          });
      JudgeCertificate(certificate->outcome, out);
    } else {
      certificate = CertificateStep{CertificateNotAttempted(*package), {}};
      out.certificate = certificate->outcome;
    }
  }
  std::vector<uint8_t> result = BuildResult(*package, uid, slots, entry.attempts, certificate);

  // Report and journal in one write. A refused write (disk full) is retried for a while: the
  // ECU holds the keys now, and only this report can prove it.
  entry.reported = true;
  entry.reply = EncodeEolReply(out);
  Status reported;
  for (int attempt = 0; attempt < 20; ++attempt) {
    reported = store_->Commit([&](broker::WriteContext& write) {
      ASSIGN_OR_RETURN(entry.result_sequence,
                       write.Send({options_.plant, kRequestsStream},
                                  wire::MessageType::InjectionResult, result));
      journal_->Put(write.batch(), product, uid, entry);
      return Status::Ok();
    });
    if (reported.ok()) break;
    spdlog::error("ECU {}: cannot queue the InjectionResult: {}", ToHex(uid), reported.message());
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (!reported.ok()) {
    out.outcome = kOutcomeInternal;
    out.message = "the ECU was loaded but its result cannot be stored (" + reported.message() +
                  "); the key set will be burned at its deadline";
    return out;
  }
  spdlog::info("ECU {} as {}: {} ({})", ToHex(uid), product, out.outcome, out.message);

  {
    std::unique_lock lock(mu_);
    arrived_cv_.wait_for(lock, options_.ack_wait, [&] {
      return ReportState(entry.result_sequence) == kReportAcknowledged;
    });
  }
  out.report = ReportState(entry.result_sequence);
  return out;
}

std::string Provisioner::ReportState(uint64_t result_sequence) const {
  return store_->AckedThrough({options_.plant, kRequestsStream}) >= result_sequence
             ? kReportAcknowledged
             : kReportQueued;
}

}  // namespace keyline::injector

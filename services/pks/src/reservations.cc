// Serving stations: KeyPackageRequest -> reservation -> KeyPackage, and burning reservations
// whose result never came.
#include <flatbuffers/flatbuffers.h>

#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/pks_injector_generated.h"
#include "plant_core.h"

namespace keyline::pks {

Status HandleInjectionResult(PlantCore& core, const broker::Delivery& delivery,
                             broker::WriteContext& write);  // results.cc
Status HandleCertificateRequest(PlantCore& core, const broker::Delivery& delivery,
                                broker::WriteContext& write);  // certificates.cc

namespace {

// The answer to one request: either slots (error code NONE) or an error.
struct PackageAnswer {
  wire::PackageErrorCode error = wire::PackageErrorCode::UNSPECIFIED;
  std::string message;
  const KeySet* key_set = nullptr;
  std::vector<SlotLoad> loads;
};

PackageAnswer Refuse(wire::PackageErrorCode code, std::string message) {
  PackageAnswer answer;
  answer.error = code;
  answer.message = std::move(message);
  return answer;
}

Status SendPackage(broker::WriteContext& write, const std::string& station,
                   const wire::KeyPackageRequest& request, const PackageAnswer& answer) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  std::vector<flatbuffers::Offset<wire::PackageSlot>> slots;
  for (const SlotLoad& load : answer.loads) {
    slots.push_back(wire::CreatePackageSlot(
        fbb, load.layout.slot, load.layout.auth_slot, load.layout.counter, load.layout.flags,
        schemas::CreateBytes(fbb, load.messages.m1), schemas::CreateBytes(fbb, load.messages.m2),
        schemas::CreateBytes(fbb, load.messages.m3), schemas::CreateBytes(fbb, load.proof_digest)));
  }
  flatbuffers::Offset<wire::PackageError> error = 0;
  if (answer.error != wire::PackageErrorCode::UNSPECIFIED) {
    error = wire::CreatePackageError(fbb, answer.error, fbb.CreateString(answer.message));
  }
  const KeySet* ks = answer.key_set;
  flatbuffers::Offset<wire::CertificateChallenge> certificate = 0;
  if (ks != nullptr && ks->reservation->certificate) {
    const ReservedCertificate& c = *ks->reservation->certificate;
    certificate = wire::CreateCertificateChallenge(fbb, fbb.CreateString(c.slot.name),
                                                   schemas::CreateBytes(fbb, c.challenge));
  }
  auto package = wire::CreateKeyPackage(
      fbb, fbb.CreateString(schemas::Text(request.request_id())),
      fbb.CreateString(ks ? PackageIdFor(ks->id) : std::string()),
      fbb.CreateString(ks ? ks->id : std::string()),
      fbb.CreateString(schemas::Text(request.product())),
      schemas::CreateBytes(fbb, schemas::Bytes(request.ecu_uid())),
      ks ? ks->reservation->deadline_us : 0, fbb.CreateVector(slots), error, certificate);
  fbb.Finish(package);
  return write.Send({station, kPackagesStream}, wire::MessageType::KeyPackage,
                    schemas::FinishedBytes(fbb))
      .status();
}

bool IsHsmRefusal(const Status& status) {
  return status.code() == StatusCode::kDataLoss || status.code() == StatusCode::kPermissionDenied;
}

// Reserves (or finds the reservation of) a key set for the request and computes its loads.
// Returns an error only for what should be retried later (the HSM failed).
StatusOr<PackageAnswer> Reserve(PlantCore& core, broker::WriteContext& write,
                                const std::string& station, const wire::KeyPackageRequest& request) {
  PlantState& state = *core.state;
  std::string claimed_station(schemas::Text(request.station()));
  if (claimed_station != station) {
    return Refuse(wire::PackageErrorCode::UNKNOWN_STATION,
                  "request names station \"" + claimed_station + "\" but comes from \"" +
                      station + "\"");
  }
  if (state.config().stations.count(station) == 0) {
    return Refuse(wire::PackageErrorCode::UNKNOWN_STATION,
                  "station \"" + station + "\" is not configured at plant " + core.plant_id);
  }
  if (schemas::Text(request.request_id()).empty()) {
    return Refuse(wire::PackageErrorCode::BAD_REQUEST, "request_id is missing");
  }
  Status uid_ok = schemas::CheckFixedBytes(request.ecu_uid(), schemas::kEcuUidBytes,
                                           "KeyPackageRequest.ecu_uid");
  if (!uid_ok.ok()) return Refuse(wire::PackageErrorCode::BAD_UID, uid_ok.message());
  hsm::SheUid uid{};
  std::copy_n(request.ecu_uid()->data(), uid.size(), uid.begin());
  if (hsm::IsWildcardUid(uid)) {
    return Refuse(wire::PackageErrorCode::BAD_UID, "ecu_uid is the all-zero wildcard UID");
  }
  std::string product_name(schemas::Text(request.product()));
  auto product_it = state.config().products.find(product_name);
  if (product_it == state.config().products.end()) {
    return Refuse(wire::PackageErrorCode::UNKNOWN_PRODUCT,
                  "product \"" + product_name + "\" is not configured at plant " + core.plant_id);
  }
  const ProductConfig& product = product_it->second;
  const std::vector<uint8_t>* transport_blob = state.TransportKey(product.transport_key_ref);
  if (transport_blob == nullptr) {
    return Refuse(wire::PackageErrorCode::INTERNAL,
                  "transport key \"" + product.transport_key_ref +
                      "\" is not in this plant's HSM (keyline-pks transport-key import)");
  }
  ASSIGN_OR_RETURN(hsm::KeyHandle transport,
                   core.keys->TransportKey(product.transport_key_ref, *transport_blob));

  // Invariant 2: the same ECU and product get the same key set back, whatever became of it.
  if (const KeySet* existing = state.FindByEcu(product_name, uid)) {
    if (existing->state == KeySetState::kBurned) {
      return Refuse(wire::PackageErrorCode::RESERVATION_BURNED,
                    "key set " + existing->id + " reserved for this ECU was burned (" +
                        existing->burn_reason + "); a supervisor must decide");
    }
    PackageAnswer answer;
    answer.key_set = existing;
    ASSIGN_OR_RETURN(answer.loads,
                     core.keys->ComputeLoads(core.plant_id, *existing,
                                             existing->reservation->layout, transport, uid));
    return answer;
  }

  // The issuing CA and budget are checked before any key is handed out: an ECU whose
  // certificate could not be issued would otherwise burn its key set half-way.
  if (product.certificate) {
    auto ca = state.config().issuing_cas.find(product.oem);
    if (ca == state.config().issuing_cas.end()) {
      return Refuse(wire::PackageErrorCode::NO_ISSUING_CA,
                    "plant " + core.plant_id + " holds no issuing CA for OEM \"" + product.oem +
                        "\", which product \"" + product_name + "\" needs (keylinectl plant ca issue)");
    }
    if (Status usable = core.keys->CheckIssuingCaRecently(ca->second); !usable.ok()) {
      return Refuse(wire::PackageErrorCode::NO_ISSUING_CA, usable.message());
    }
    const BudgetLevel level = core.state->BudgetLevelOf(product.oem);
    if (level.available() == 0) {
      RETURN_IF_ERROR(ReplenishBudget(core, write, product.oem));
      return Refuse(wire::PackageErrorCode::BUDGET_EXHAUSTED,
                    "the issuing budget of OEM \"" + product.oem + "\" at plant " + core.plant_id +
                        " is spent (" + level.Describe() + ")" +
                        (core.state->Budget(product.oem).request_id.empty()
                             ? "; the KMS grants more (keylinectl plant ca budget)"
                             : "; more has been asked of the KMS"));
    }
  }

  // A key set that does not open here is burned and the next one tried: it must never be
  // served, and one bad key set must not stop the line.
  for (;;) {
    const KeySet* candidate = state.OldestInStock(product_name);
    if (candidate == nullptr) {
      RETURN_IF_ERROR(Replenish(core, write, product_name));
      return Refuse(wire::PackageErrorCode::OUT_OF_STOCK,
                    "no key set of product \"" + product_name + "\" in stock at plant " +
                        core.plant_id + "; more has been requested");
    }
    KeySet reserved = *candidate;
    Reservation reservation;
    reservation.package_id = PackageIdFor(reserved.id);
    reservation.request_id = std::string(schemas::Text(request.request_id()));
    reservation.station = station;
    reservation.ecu_uid = uid;
    reservation.reserved_at_us = core.now_us();
    reservation.deadline_us =
        reservation.reserved_at_us + int64_t{product.reservation_timeout_s} * 1'000'000;
    reservation.layout = product.slots;
    if (product.certificate) {
      // Fresh for each reservation: a CSR made for another ECU, or earlier, does not carry it.
      ReservedCertificate certificate;
      certificate.slot = *product.certificate;
      ASSIGN_OR_RETURN(certificate.challenge, core.keys->Random(schemas::kCertificateChallengeBytes));
      reservation.certificate = std::move(certificate);
    }
    reserved.state = KeySetState::kReserved;
    reserved.reservation = reservation;

    auto loads = reserved.slots == product.SlotNumbers()
                     ? core.keys->ComputeLoads(core.plant_id, reserved, product.slots, transport, uid)
                     : StatusOr<std::vector<SlotLoad>>(DataLossError(
                           "its slots do not match the product's layout"));
    if (!loads.ok() && !IsHsmRefusal(loads.status())) return loads.status();
    if (!loads.ok()) {
      // Burned for no ECU (the all-zero UID): the KMS learns that this key set is spent, and
      // this ECU's request moves on to the next key set.
      std::string reason = "key set does not open at this plant: " + loads.status().message();
      reserved.reservation->ecu_uid = hsm::SheUid{};
      reserved.reservation->station.clear();
      RETURN_IF_ERROR(RecordOutcome(core, write, std::move(reserved), {}, reason));
      continue;
    }
    for (const SlotLoad& load : *loads) reserved.reservation->expected_proofs.push_back(load.expected);
    std::string id = reserved.id;
    core.state->PutKeySet(write.batch(), std::move(reserved));
    RETURN_IF_ERROR(Replenish(core, write, product_name));
    if (product.certificate) RETURN_IF_ERROR(ReplenishBudget(core, write, product.oem));
    PackageAnswer answer;
    answer.key_set = core.state->Find(id);
    answer.loads = std::move(*loads);
    spdlog::info("key set {} RESERVED for ECU {} ({}) at station {}", id, ToHex(uid),
                 product_name, station);
    return answer;
  }
}

Status HandlePackageRequest(PlantCore& core, const broker::Delivery& delivery,
                            broker::WriteContext& write) {
  ASSIGN_OR_RETURN(const wire::KeyPackageRequest* request,
                   schemas::DecodeMessage<wire::KeyPackageRequest>(delivery.payload));
  ASSIGN_OR_RETURN(PackageAnswer answer, Reserve(core, write, delivery.peer, *request));
  if (answer.error != wire::PackageErrorCode::UNSPECIFIED) {
    spdlog::warn("package refused to station {} for product \"{}\": {} ({})", delivery.peer,
                 schemas::Text(request->product()), wire::EnumNamePackageErrorCode(answer.error),
                 answer.message);
  }
  return SendPackage(write, delivery.peer, *request, answer);
}

}  // namespace

Status HandleStationDelivery(PlantCore& core, const broker::Delivery& delivery,
                             broker::WriteContext& write) {
  std::lock_guard lock(core.mu);
  RETURN_IF_ERROR(core.SyncWithDatabase());
  switch (delivery.type) {
    case wire::MessageType::KeyPackageRequest:
      return HandlePackageRequest(core, delivery, write);
    case wire::MessageType::InjectionResult:
      return HandleInjectionResult(core, delivery, write);
    case wire::MessageType::CertificateRequest:
      return HandleCertificateRequest(core, delivery, write);
    default:
      return InvalidArgumentError("station " + delivery.peer + " sent a " +
                                  schemas::MessageTypeName(delivery.type) +
                                  ", which a PKS does not take from stations");
  }
}

StatusOr<size_t> BurnExpiredReservations(PlantCore& core, broker::WriteContext& write,
                                         size_t max) {
  std::lock_guard lock(core.mu);
  RETURN_IF_ERROR(core.SyncWithDatabase());
  std::vector<KeySet> expired;
  for (const KeySet* ks : core.state->ExpiredReservations(core.now_us(), max)) {
    expired.push_back(*ks);
  }
  for (KeySet& ks : expired) {
    int64_t waited_s = (core.now_us() - ks.reservation->reserved_at_us) / 1'000'000;
    std::string reason = "reservation timed out: no result within " + std::to_string(waited_s) + " s";
    std::vector<SlotVerdict> verdicts;
    for (const SlotConfig& slot : ks.reservation->layout) {
      verdicts.push_back(SlotVerdict{slot, std::nullopt, false, "no result"});
    }
    RETURN_IF_ERROR(RecordOutcome(core, write, std::move(ks), verdicts, reason));
  }
  return expired.size();
}

}  // namespace keyline::pks

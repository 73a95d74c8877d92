// Issuing an ECU's certificate: CertificateRequest -> checks -> the plant's issuing CA signs ->
// CertificateIssued, with the certificate stored in the reservation in the same write, so that
// a repeated request (or one after a crash) gets the same certificate and never a second one.
#include <flatbuffers/flatbuffers.h>

#include <algorithm>
#include <variant>

#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/pks_injector_generated.h"
#include "plant_core.h"

namespace keyline::pks {
namespace {

struct Refusal {
  wire::PackageErrorCode code;
  std::string message;
};

Status SendIssued(broker::WriteContext& write, const std::string& station,
                  const wire::CertificateRequest& request, const ReservedCertificate* issued,
                  const Refusal* refusal) {
  flatbuffers::FlatBufferBuilder fbb(2048);
  flatbuffers::Offset<wire::PackageError> error = 0;
  if (refusal != nullptr) {
    error = wire::CreatePackageError(fbb, refusal->code, fbb.CreateString(refusal->message));
  }
  fbb.Finish(wire::CreateCertificateIssued(
      fbb, fbb.CreateString(schemas::Text(request.package_id())),
      schemas::CreateBytes(fbb, schemas::Bytes(request.ecu_uid())),
      fbb.CreateString(schemas::Text(request.slot())),
      issued ? fbb.CreateString(issued->certificate) : 0, issued ? fbb.CreateString(issued->chain) : 0,
      issued ? schemas::CreateBytes(fbb, issued->confirm_challenge) : 0, error));
  return write.Send({station, kPackagesStream}, wire::MessageType::CertificateIssued,
                    schemas::FinishedBytes(fbb))
      .status();
}

hsm::EndEntityProfile ProfileFor(const ReservedCertificate& certificate, const KeySet& key_set,
                                 const std::string& oem, const hsm::SheUid& uid) {
  const schemas::CertificateSlotSpec& slot = certificate.slot;
  hsm::EndEntityProfile profile;
  profile.subject.organization = slot.organization;
  profile.subject.organizational_unit = slot.organizational_unit;
  profile.subject.common_name = slot.CommonNameFor(uid, key_set.product, oem);
  profile.subject.serial_number = ToHex(uid);
  profile.validity_days = static_cast<int>(slot.validity_days);
  profile.key_usage = slot.key_usage;
  profile.extended_key_usage = slot.extended_key_usage;
  return profile;
}

// Checks the request against its reservation and issues (or finds) the certificate. A refusal
// is returned as such; an error Status only for what should be retried (the HSM failed).
StatusOr<std::variant<ReservedCertificate, Refusal>> Issue(PlantCore& core,
                                                           broker::WriteContext& write,
                                                           const std::string& station,
                                                           const wire::CertificateRequest& request) {
  using Answer = std::variant<ReservedCertificate, Refusal>;
  auto refuse = [](wire::PackageErrorCode code, std::string message) -> Answer {
    return Refusal{code, std::move(message)};
  };
  std::string package_id(schemas::Text(request.package_id()));
  const KeySet* found = KeySetOfPackage(*core.state, package_id);
  if (found == nullptr || !found->reservation) {
    return refuse(wire::PackageErrorCode::NOT_RESERVED, "unknown package \"" + package_id + "\"");
  }
  const Reservation& reservation = *found->reservation;
  if (reservation.station != station) {
    return refuse(wire::PackageErrorCode::NOT_RESERVED,
                  "package " + package_id + " belongs to another station");
  }
  if (!schemas::CheckFixedBytes(request.ecu_uid(), schemas::kEcuUidBytes, "").ok() ||
      !std::equal(reservation.ecu_uid.begin(), reservation.ecu_uid.end(), request.ecu_uid()->data())) {
    return refuse(wire::PackageErrorCode::NOT_RESERVED,
                  "package " + package_id + " is for ECU " + ToHex(reservation.ecu_uid));
  }
  if (found->state != KeySetState::kReserved) {
    return refuse(wire::PackageErrorCode::NOT_RESERVED,
                  "package " + package_id + " is already " + KeySetStateName(found->state));
  }
  if (!reservation.certificate) {
    return refuse(wire::PackageErrorCode::NOT_RESERVED,
                  "package " + package_id + " has no certificate slot");
  }
  const ReservedCertificate& reserved = *reservation.certificate;
  if (schemas::Text(request.slot()) != reserved.slot.name) {
    return refuse(wire::PackageErrorCode::BAD_REQUEST,
                  "certificate slot \"" + std::string(schemas::Text(request.slot())) +
                      "\" is not the product's \"" + reserved.slot.name + "\"");
  }
  std::string_view csr_pem = schemas::Text(request.csr());
  if (csr_pem.empty() || csr_pem.size() > schemas::kMaxPemBytes) {
    return refuse(wire::PackageErrorCode::CSR_REFUSED,
                  "the CSR is missing or longer than " + std::to_string(schemas::kMaxPemBytes) +
                      " bytes");
  }
  // Proof of possession over this reservation's challenge: a CSR made for another ECU or an
  // earlier package does not carry it.
  auto csr = hsm::CheckCsr(csr_pem, reserved.challenge);
  if (!csr.ok()) return refuse(wire::PackageErrorCode::CSR_REFUSED, csr.status().message());
  if (csr->subject.serial_number != ToHex(reservation.ecu_uid)) {
    return refuse(wire::PackageErrorCode::CSR_REFUSED,
                  "the CSR's serialNumber \"" + csr->subject.serial_number +
                      "\" is not this ECU's UID " + ToHex(reservation.ecu_uid));
  }
  if (reserved.issued()) {
    // Asking again: the same certificate, never a second one for this ECU slot.
    ASSIGN_OR_RETURN(std::vector<uint8_t> issued_key, hsm::PublicKeyInfoOf(reserved.certificate));
    if (issued_key != csr->spki_der) {
      return refuse(wire::PackageErrorCode::CSR_REFUSED,
                    "a certificate was already issued for this ECU slot, for another key");
    }
    return Answer(reserved);
  }

  auto product = core.state->config().products.find(found->product);
  std::string oem = product != core.state->config().products.end() ? product->second.oem : "";
  auto ca = core.state->config().issuing_cas.find(oem);
  if (ca == core.state->config().issuing_cas.end()) {
    return refuse(wire::PackageErrorCode::NO_ISSUING_CA,
                  "plant " + core.plant_id + " holds no issuing CA for OEM \"" + oem + "\"");
  }
  if (Status usable = core.keys->CheckIssuingCaRecently(ca->second); !usable.ok()) {
    return refuse(wire::PackageErrorCode::NO_ISSUING_CA, usable.message());
  }
  // The reservation held a unit of the budget; this is the hard limit all the same.
  CertificateBudget budget = core.state->Budget(oem);
  if (budget.issued >= budget.granted) {
    return refuse(wire::PackageErrorCode::BUDGET_EXHAUSTED,
                  "the issuing budget of OEM \"" + oem + "\" at plant " + core.plant_id + " is spent (" +
                      core.state->BudgetLevelOf(oem).Describe() + ")");
  }
  ReservedCertificate issued = reserved;
  ASSIGN_OR_RETURN(issued.certificate,
                   core.keys->IssueEcuCertificate(
                       ca->second, *csr,
                       ProfileFor(reserved, *found, oem, reservation.ecu_uid)));
  ASSIGN_OR_RETURN(issued.confirm_challenge,
                   core.keys->Random(schemas::kCertificateChallengeBytes));
  issued.chain = ca->second.certificate;
  issued.issuing_ca = ca->second.key_name;
  issued.issued_at_us = core.now_us();

  KeySet updated = *found;
  updated.reservation->certificate = issued;
  spdlog::info("certificate issued for ECU {} slot {} by {} (key set {})",
               ToHex(reservation.ecu_uid), issued.slot.name, issued.issuing_ca, updated.id);
  core.state->PutKeySet(write.batch(), std::move(updated));
  ++budget.issued;
  core.state->PutBudget(write.batch(), std::move(budget));
  return Answer(std::move(issued));
}

}  // namespace

Status HandleCertificateRequest(PlantCore& core, const broker::Delivery& delivery,
                                broker::WriteContext& write) {
  ASSIGN_OR_RETURN(const wire::CertificateRequest* request,
                   schemas::DecodeMessage<wire::CertificateRequest>(delivery.payload));
  if (core.state->config().stations.count(delivery.peer) == 0) {
    Refusal refusal{wire::PackageErrorCode::UNKNOWN_STATION,
                    "station \"" + delivery.peer + "\" is not configured at plant " + core.plant_id};
    return SendIssued(write, delivery.peer, *request, nullptr, &refusal);
  }
  ASSIGN_OR_RETURN(auto answer, Issue(core, write, delivery.peer, *request));
  if (auto* refusal = std::get_if<Refusal>(&answer)) {
    spdlog::warn("certificate refused to station {} for package {}: {} ({})", delivery.peer,
                 schemas::Text(request->package_id()), wire::EnumNamePackageErrorCode(refusal->code),
                 refusal->message);
    return SendIssued(write, delivery.peer, *request, nullptr, refusal);
  }
  return SendIssued(write, delivery.peer, *request, &std::get<ReservedCertificate>(answer), nullptr);
}

}  // namespace keyline::pks

// Applying an InjectionResult: check the ECU's proof in the HSM, then INJECTED or BURNED and
// the signed record for the KMS, in one write.
#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/pks_injector_generated.h"
#include "plant_core.h"

namespace keyline::pks {
namespace {

// Confirmed only when the certificate was issued and the ECU's signature over the confirm
// challenge verifies with the certificate's key: the ECU holds the key and has the certificate.
CertificateVerdict JudgeCertificate(PlantKeys& keys, const ReservedCertificate& reserved,
                                    const hsm::SheUid& uid, const wire::CertificateResult* result) {
  // The station's words go into the record: bounded, like everything a peer sends.
  constexpr size_t kMaxSignatureBytes = 72;  // a DER ECDSA P-256 signature
  constexpr size_t kMaxDetail = 240;
  CertificateVerdict verdict;
  const std::string where = "certificate slot " + reserved.slot.name + ": ";
  const std::string detail =
      result != nullptr ? std::string(schemas::Text(result->detail()).substr(0, kMaxDetail)) : "";
  if (result != nullptr) {
    auto confirmation = schemas::Bytes(result->confirmation());
    if (confirmation.size() > kMaxSignatureBytes) {
      verdict.problem = where + "the confirmation is " + std::to_string(confirmation.size()) +
                        " bytes, longer than a P-256 signature";
      return verdict;
    }
    verdict.confirmation.assign(confirmation.begin(), confirmation.end());
  }
  if (!reserved.issued()) {
    verdict.problem = where + "no certificate was issued";
    if (!detail.empty()) verdict.problem += " (" + detail + ")";
    return verdict;
  }
  if (result == nullptr) {
    verdict.problem = where + "the result does not report it";
    return verdict;
  }
  if (result->ecu_error() != wire::EcuError::NONE && result->ecu_error() != wire::EcuError::WRONG_CONFIRMATION) {
    std::string name = wire::EnumNameEcuError(result->ecu_error());
    verdict.problem = where + (name.empty() ? "EcuError " + std::to_string(static_cast<int>(
                                                               result->ecu_error()))
                                            : name) +
                      " (" + detail + ")";
    return verdict;
  }
  auto key = keys.EcuCertificateKey(reserved.certificate);
  Status verified =
      key.ok() ? hsm::VerifyEcdsaSha256(*key,
                                        hsm::CertificateConfirmationMessage(uid, reserved.confirm_challenge),
                                        verdict.confirmation)
               : key.status();
  if (!verified.ok()) {
    verdict.problem = where + "WRONG_CONFIRMATION (" + verified.message() + ")";
    return verdict;
  }
  verdict.confirmed = true;
  return verdict;
}

}  // namespace

Status HandleInjectionResult(PlantCore& core, const broker::Delivery& delivery,
                             broker::WriteContext& write) {
  ASSIGN_OR_RETURN(const wire::InjectionResult* result,
                   schemas::DecodeMessage<wire::InjectionResult>(delivery.payload));
  std::string package_id(schemas::Text(result->package_id()));
  const KeySet* found = KeySetOfPackage(*core.state, package_id);
  // Refusals below are permanent: the link keeps the message as a dead letter for a person.
  if (found == nullptr || !found->reservation) {
    return NotFoundError("InjectionResult from " + delivery.peer + " names unknown package \"" +
                         package_id + "\"");
  }
  RETURN_IF_ERROR(schemas::CheckFixedBytes(result->ecu_uid(), schemas::kEcuUidBytes,
                                           "InjectionResult.ecu_uid"));
  hsm::SheUid uid{};
  std::copy_n(result->ecu_uid()->data(), uid.size(), uid.begin());
  if (uid != found->reservation->ecu_uid) {
    return InvalidArgumentError("InjectionResult from " + delivery.peer + " for package " +
                                package_id + " names ECU " + ToHex(uid) +
                                ", but the package is for " + ToHex(found->reservation->ecu_uid));
  }
  if (core.state->config().stations.count(delivery.peer) == 0) {
    return PermissionDeniedError("InjectionResult from station " + delivery.peer +
                                 ", which is not configured at this plant");
  }
  if (found->state != KeySetState::kReserved) {
    // Already decided (a retried result, or one that came after the deadline): the record
    // the KMS has stays the only one.
    spdlog::info("InjectionResult for package {} from {} ignored: key set already {}", package_id,
                 delivery.peer, KeySetStateName(found->state));
    return Status::Ok();
  }

  std::vector<SlotReport> reports;
  if (result->slots() != nullptr) {
    for (const wire::ResultSlot* slot : *result->slots()) {
      SlotReport report;
      report.slot = slot->slot();
      report.ecu_error = wire::EnumNameEcuError(slot->ecu_error());
      if (report.ecu_error.empty()) {
        report.ecu_error = "EcuError " + std::to_string(static_cast<int>(slot->ecu_error()));
      }
      if (schemas::CheckFixedBytes(slot->m4(), schemas::kM4Bytes, "m4").ok() &&
          schemas::CheckFixedBytes(slot->m5(), schemas::kM5Bytes, "m5").ok()) {
        hsm::SheProof proof;
        std::copy_n(slot->m4()->data(), proof.m4.size(), proof.m4.begin());
        std::copy_n(slot->m5()->data(), proof.m5.size(), proof.m5.begin());
        report.proof = proof;
      }
      reports.push_back(std::move(report));
    }
  }
  KeySet key_set = *found;
  std::optional<CertificateVerdict> certificate;
  if (key_set.reservation->certificate) {
    certificate = JudgeCertificate(*core.keys, *key_set.reservation->certificate, uid, result->certificate());
  }
  auto verdicts = core.keys->CheckProofs(core.plant_id, key_set, key_set.reservation->layout, uid,
                                         reports);
  if (!verdicts.ok()) {
    if (verdicts.status().code() == StatusCode::kDataLoss ||
        verdicts.status().code() == StatusCode::kPermissionDenied) {
      return RecordOutcome(core, write, std::move(key_set), {},
                           "key set does not open to check the proof: " +
                               verdicts.status().message());
    }
    return UnavailableError("checking the proof of package " + package_id + ": " +
                            verdicts.status().message());
  }
  return RecordOutcome(core, write, std::move(key_set), *verdicts, "",
                       certificate ? &*certificate : nullptr);
}

}  // namespace keyline::pks

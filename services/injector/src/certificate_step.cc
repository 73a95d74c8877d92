#include "certificate_step.h"

#include <flatbuffers/flatbuffers.h>

#include <algorithm>
#include <string>

#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/hsm/key_custody.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/pks_injector_generated.h"

namespace keyline::injector {
namespace {

CertificateStep Failed(CertificateStep step, EcuError error, std::string detail) {
  step.outcome.error = error;
  step.outcome.detail = std::move(detail);
  return step;
}

// An ECU call's answer, retried while the ECU stays silent (like a SHE load).
template <typename Call>
StatusOr<EcuCertificateAnswer> WithRetries(const LoadPolicy& policy, Call call) {
  StatusOr<EcuCertificateAnswer> answer = call();
  for (int attempt = 1; attempt < policy.attempts && answer.ok() &&
                        (answer->error == EcuError::kTimeout || answer->error == EcuError::kNoAnswer);
       ++attempt) {
    answer = call();
  }
  return answer;
}

}  // namespace

CertificateOutcome CertificateNotAttempted(const wire::KeyPackage& package) {
  CertificateOutcome outcome;
  outcome.slot = std::string(schemas::Text(package.certificate()->slot()));
  outcome.error = EcuError::kNotAttempted;
  outcome.detail = "not attempted: a SHE slot failed";
  return outcome;
}

CertificateStep RunCertificateSlot(EcuLink& ecu, const EcuUid& uid, const wire::KeyPackage& package,
                                   const LoadPolicy& policy, const AskForCertificate& ask) {
  CertificateStep step;
  const wire::CertificateChallenge& challenge = *package.certificate();
  const std::string slot(schemas::Text(challenge.slot()));
  step.outcome.slot = slot;
  std::span<const uint8_t> csr_challenge = schemas::Bytes(challenge.challenge());

  // 1. The ECU's key pair and CSR.
  auto generated = WithRetries(policy, [&] {
    return ecu.GenerateKeyPair(uid, slot, csr_challenge, policy.answer_timeout);
  });
  if (!generated.ok()) return Failed(step, EcuError::kGeneralError, generated.status().message());
  if (generated->error != EcuError::kNone) {
    return Failed(step, generated->error, "key pair generation: " + generated->detail);
  }
  auto csr = hsm::CheckCsr(generated->csr, csr_challenge);
  if (!csr.ok()) {
    return Failed(step, EcuError::kGeneralError, "the ECU's CSR does not check out: " +
                                                     csr.status().message());
  }

  // 2. The certificate from the PKS.
  flatbuffers::FlatBufferBuilder fbb(1024);
  fbb.Finish(wire::CreateCertificateRequest(
      fbb, fbb.CreateString(schemas::Text(package.package_id())), schemas::CreateBytes(fbb, uid),
      fbb.CreateString(slot), fbb.CreateString(generated->csr)));
  auto issued_bytes = ask(schemas::FinishedBytes(fbb));
  if (!issued_bytes.ok()) {
    return Failed(step, EcuError::kCertificateNotIssued, issued_bytes.status().message());
  }
  if (issued_bytes->empty()) {
    return Failed(step, EcuError::kCertificateNotIssued, "no certificate from the PKS in time");
  }
  auto issued = schemas::DecodeMessage<wire::CertificateIssued>(*issued_bytes);
  if (!issued.ok()) return Failed(step, EcuError::kCertificateNotIssued, issued.status().message());
  if (const wire::PackageError* error = (*issued)->error()) {
    std::string code(wire::EnumNamePackageErrorCode(error->code()));
    return Failed(step, EcuError::kCertificateNotIssued,
                  (code.empty() ? std::string("UNSPECIFIED") : code) + ": " +
                      std::string(schemas::Text(error->message())));
  }
  std::string certificate(schemas::Text((*issued)->certificate()));
  std::span<const uint8_t> confirm_challenge = schemas::Bytes((*issued)->confirm_challenge());
  step.outcome.certificate = certificate;
  auto info = hsm::InspectCertificate(certificate);
  if (!info.ok() || confirm_challenge.size() != schemas::kCertificateChallengeBytes) {
    return Failed(step, EcuError::kCertificateNotIssued,
                  "the PKS sent an unusable certificate or confirm challenge");
  }
  if (info->spki_der != csr->spki_der || info->subject.serial_number != ToHex(uid)) {
    return Failed(step, EcuError::kCertificateNotIssued,
                  "the PKS's certificate is not for this ECU's key and UID");
  }

  // 3. The ECU stores it and confirms.
  auto stored = WithRetries(policy, [&] {
    return ecu.StoreCertificate(uid, slot, certificate, confirm_challenge, policy.answer_timeout);
  });
  if (!stored.ok()) return Failed(step, EcuError::kGeneralError, stored.status().message());
  if (stored->error != EcuError::kNone) {
    return Failed(step, stored->error, "storing the certificate: " + stored->detail);
  }
  step.confirmation = stored->signature;
  Status confirmed = hsm::VerifyEcdsaSha256(
      info->spki_der, hsm::CertificateConfirmationMessage(uid, confirm_challenge), stored->signature);
  if (!confirmed.ok()) {
    return Failed(step, EcuError::kWrongConfirmation,
                  "the ECU's confirmation does not verify: " + confirmed.message());
  }
  return step;
}

}  // namespace keyline::injector

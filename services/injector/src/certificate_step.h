// The certificate slot of a KeyPackage, after its SHE slots are loaded:
//   1. the ECU makes its key pair and answers a CSR over the package's challenge;
//   2. the PKS checks the CSR and issues the certificate (CertificateRequest -> CertificateIssued);
//   3. the injector checks the certificate is for this ECU and the CSR's key, the ECU stores it
//      and signs the PKS's confirm challenge, and the injector checks that signature.
// Whatever happened goes into the InjectionResult; the PKS checks the confirmation again.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/injector/ecu_link.h"
#include "keyline/injector/provision_outcome.h"
#include "slot_loader.h"

namespace keyline::wire {
struct KeyPackage;
}  // namespace keyline::wire

namespace keyline::injector {

// Sends a CertificateRequest (its bytes) to the PKS and returns the CertificateIssued bytes, or
// an empty vector when none came in time; an error when the request could not be queued.
using AskForCertificate =
    std::function<StatusOr<std::vector<uint8_t>>(std::span<const uint8_t> request)>;

struct CertificateStep {
  CertificateOutcome outcome;
  std::vector<uint8_t> confirmation;  // the ECU's signature, when it gave one
};

// Runs the certificate slot of `package` (which has one) for ECU `uid`.
CertificateStep RunCertificateSlot(EcuLink& ecu, const EcuUid& uid, const wire::KeyPackage& package,
                                   const LoadPolicy& policy, const AskForCertificate& ask);

// The InjectionResult's CertificateResult for `step` is built by the caller; this is the
// outcome for a package whose SHE slots failed: nothing was attempted.
CertificateOutcome CertificateNotAttempted(const wire::KeyPackage& package);

}  // namespace keyline::injector

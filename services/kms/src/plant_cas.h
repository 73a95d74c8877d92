// Certificate authorities: each OEM's CA certificate (the OEM keeps its key) and the plants'
// issuing CAs, whose keys live in the plant HSMs (docs/certificates.md).
//
// A plant CA goes REQUESTED (PlantCaRequest queued to the plant) -> CSR_RECEIVED (the plant's
// CSR proved possession of the key over the KMS's challenge) -> ACTIVE (the OEM CA's
// certificate checked and shipped in the plant's ConfigUpdate) -> REVOKED (no longer shipped).
// A revoked CA is never reactivated: the next one is a new generation with a new key.
//
// Threads: every change reads, checks and writes inside one Work on the message store's
// commit thread (admin commands and plant deliveries alike), so two changes never interleave;
// ActiveFor and the lookups take the lock from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit_log.h"
#include "catalog.h"
#include "keyline/hsm/x509.h"
#include "kms_context.h"

namespace keyline::kms {

enum class PlantCaState : uint8_t { kRequested = 1, kCsrReceived = 2, kActive = 3, kRevoked = 4 };

std::string_view PlantCaStateName(PlantCaState state);  // "requested", "csr_received", ...

struct PlantCaSpec {
  std::string plant;
  std::string oem;
  uint32_t generation = 0;  // 1, 2, ... per plant and OEM
  PlantCaState state = PlantCaState::kRequested;
  std::string request_id;  // "<plant>/<oem>/<generation>"
  std::string key_name;    // "plant-ca/<oem>/<generation>": the key's name in the plant HSM
  hsm::CertificateSubject subject;
  std::vector<uint8_t> challenge;
  std::string csr;          // PEM, once received
  std::string certificate;  // PEM, once installed
  int64_t requested_at_us = 0;
  int64_t changed_at_us = 0;
  std::string revoke_reason;
};

class PlantCas {
 public:
  PlantCas(KmsContext* context, Catalog* catalog, AuditLog* audit)
      : context_(context), catalog_(catalog), audit_(audit) {}

  [[nodiscard]] Status Load();

  // Registers (or, while none of the OEM's plant CAs is in use, replaces) the OEM's CA
  // certificate: it must be a self-signed P-256 CA certificate, valid now.
  [[nodiscard]] Status ImportOemCa(const std::string& oem, const std::string& certificate_pem,
                                   const std::string& actor);

  // The plant's current CA for `oem`, or a new generation (PlantCaRequest queued) if there is
  // none or the last one was revoked.
  [[nodiscard]] StatusOr<PlantCaSpec> Issue(const std::string& plant, const std::string& oem,
                                            const std::string& actor);

  // A plant's PlantCaCsr, inside a link delivery. Refused: an unknown request, another plant's
  // request, a CSR that fails CheckCsr (bad signature, wrong challenge) or asks for another
  // subject. A repeat for a CA already past REQUESTED changes nothing.
  [[nodiscard]] Status ReceiveCsr(const std::string& plant, const std::string& request_id,
                                  const std::string& csr_pem, broker::WriteContext& write);

  // Installs the certificate the OEM CA signed for the CSR of `request_id`: it must chain to
  // the OEM CA now, be a CA with path length 0, carry the CSR's key and subject. Ships it in
  // the plant's ConfigUpdate in the same write. Installing the same certificate again is OK.
  [[nodiscard]] StatusOr<PlantCaSpec> Install(const std::string& plant, const std::string& oem,
                                              const std::string& request_id,
                                              const std::string& certificate_pem,
                                              const std::string& actor);

  // Revokes the plant's current CA for `oem` (any state but REVOKED) and ships a ConfigUpdate
  // without it.
  [[nodiscard]] StatusOr<PlantCaSpec> Revoke(const std::string& plant, const std::string& oem,
                                             const std::string& reason, const std::string& actor);

  // What the plant's ConfigUpdate lists: its ACTIVE CAs with their OEM's CA certificate.
  std::vector<IssuingCaConfig> ActiveFor(const std::string& plant) const;

  std::optional<std::string> OemCaCertificate(const std::string& oem) const;
  // Every generation of every plant, for the status page.
  std::vector<PlantCaSpec> All() const;

 private:
  PlantCaSpec* CurrentLocked(const std::string& plant, const std::string& oem);
  void PutLocked(broker::WriteContext& write, const PlantCaSpec& ca);
  // Memory may be ahead of the disk after a failed group write: reload (caller holds mu_).
  void ReloadAfterFailedWriteLocked();
  [[nodiscard]] Status LoadLocked();

  KmsContext* context_;
  Catalog* catalog_;
  AuditLog* audit_;
  mutable std::mutex mu_;
  FailedWriteWatch failed_writes_;
  std::map<std::string, std::string> oem_cas_;  // OEM -> CA certificate (PEM)
  // (plant, oem) -> generations, oldest first.
  std::map<std::pair<std::string, std::string>, std::vector<PlantCaSpec>> plant_cas_;
};

}  // namespace keyline::kms

// What one provisioning came to, as the EOL tester sees it: the outcome code, a message for
// the screen, and per slot what the ECU did. Travels as an EolReply (schemas/eol.fbs) and is
// kept in the injector's journal in that form.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/injector/ecu_link.h"

namespace keyline::injector {

inline constexpr char kOutcomeProvisioned[] = "PROVISIONED";
// No KeyPackage in time: the PKS is down or unreachable. The request stays queued; asking
// again later picks up the package when it has come.
inline constexpr char kOutcomePksUnreachable[] = "PKS_UNREACHABLE";
inline constexpr char kOutcomeBadRequest[] = "BAD_REQUEST";
inline constexpr char kOutcomeInternal[] = "INTERNAL";

// Where the InjectionResult is.
inline constexpr char kReportAcknowledged[] = "acknowledged";  // the PKS has recorded it
inline constexpr char kReportQueued[] = "queued";              // in the durable outbox

struct SlotOutcome {
  uint8_t slot = 0;
  EcuError error = EcuError::kNone;  // kNone: the ECU proved the load
  uint16_t attempts = 0;             // loads sent (0: not attempted)
};

// The product's certificate slot, when it has one.
struct CertificateOutcome {
  std::string slot;
  EcuError error = EcuError::kNone;  // kNone: stored and confirmed
  std::string certificate;           // PEM, once issued
  std::string detail;
};

struct ProvisionOutcome {
  // kOutcomeProvisioned, a PackageErrorCode name (OUT_OF_STOCK, ...), the EcuError name of the
  // failing slot (TIMEOUT, WRONG_PROOF, ...), or one of the kOutcome* above.
  std::string outcome;
  std::string message;
  std::string product;
  EcuUid ecu_uid{};
  std::string station;
  std::string plant;
  std::string key_set_id;
  std::string package_id;
  std::vector<SlotOutcome> slots;
  std::optional<CertificateOutcome> certificate;
  std::string report;     // kReportAcknowledged, kReportQueued or "" (nothing reported)
  bool repeated = false;  // answered from the journal: done before

  bool provisioned() const { return outcome == kOutcomeProvisioned; }
};

// EolReply bytes <-> ProvisionOutcome. Decoding verifies the buffer first.
std::vector<uint8_t> EncodeEolReply(const ProvisionOutcome& outcome);
[[nodiscard]] StatusOr<ProvisionOutcome> DecodeEolReply(std::span<const uint8_t> bytes);

}  // namespace keyline::injector

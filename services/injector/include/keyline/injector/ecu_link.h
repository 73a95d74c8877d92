// EcuLink: how the injector talks to one ECU on the EOL station (CMD_LOAD_KEY, a read of the
// slots, and a certificate slot's key pair and certificate). SimulatorEcuLink speaks to keyline-ecu-sim; UDS over DoIP or CAN goes here later.
// No transport types in this header.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "keyline/broker/curve_keys.h"
#include "keyline/common/status.h"

namespace keyline::injector {

using EcuUid = std::array<uint8_t, 15>;

// How a load ended, as the injector reports it (values = wire::EcuError in pks_injector.fbs).
enum class EcuError : uint8_t {
  kNone = 0,               // M4 and M5 came back (the caller still checks them)
  kKeyUpdateError = 1,     // M3 did not verify (also: the authorising slot was empty)
  kWriteProtected = 2,
  kCounterNotLarger = 3,   // an earlier load may have landed (SHE.md field notes)
  kTimeout = 4,            // sent, no answer in time
  kNoAnswer = 5,           // could not be reached, or power lost before the answer
  kKeyInvalid = 6,
  kGeneralError = 7,
  // The injector's own verdicts; an EcuLink never returns these.
  kWrongProof = 8,         // the ECU answered, but M4/M5 do not match the expected proof
  kNotAttempted = 9,       // not loaded because an earlier slot failed
  kCertificateNotIssued = 10,  // the PKS issued no certificate (refused, or no answer in time)
  kWrongConfirmation = 11,     // the ECU's confirmation does not verify with the certificate
};
std::string_view EcuErrorName(EcuError error);

struct EcuLoadResult {
  EcuError error = EcuError::kNone;
  std::array<uint8_t, 32> m4{};  // valid when error is kNone
  std::array<uint8_t, 16> m5{};
  std::string detail;            // what the link knows beyond the code, for logs
};

// The answer to GenerateKeyPair (csr set when error is kNone) or StoreCertificate (signature
// set when error is kNone; kKeyInvalid when the certificate does not hold the slot's key).
struct EcuCertificateAnswer {
  EcuError error = EcuError::kNone;
  std::string csr;                 // PEM
  std::vector<uint8_t> signature;  // DER ECDSA over hsm::CertificateConfirmationMessage
  std::string detail;
};

struct EcuSlotState {
  uint8_t slot = 0;
  bool loaded = false;
  uint32_t counter = 0;
  uint8_t flags = 0;
};

class EcuLink {
 public:
  virtual ~EcuLink() = default;
  // CMD_LOAD_KEY. The ECU's answers (including silence) are outcomes; a Status error means the
  // request could not be formed or the answer was malformed (a link or simulator bug).
  [[nodiscard]] virtual StatusOr<EcuLoadResult> LoadKey(const EcuUid& uid,
                                                        const std::array<uint8_t, 16>& m1,
                                                        const std::array<uint8_t, 32>& m2,
                                                        const std::array<uint8_t, 16>& m3,
                                                        std::chrono::milliseconds timeout) = 0;
  // Every slot's state (never a key). No answer in time is DEADLINE_EXCEEDED.
  [[nodiscard]] virtual StatusOr<std::vector<EcuSlotState>> GetInfo(
      const EcuUid& uid, std::chrono::milliseconds timeout) = 0;
  // The certificate slot's key pair (made inside the ECU) and a CSR over `challenge`.
  [[nodiscard]] virtual StatusOr<EcuCertificateAnswer> GenerateKeyPair(
      const EcuUid& uid, const std::string& slot, std::span<const uint8_t> challenge,
      std::chrono::milliseconds timeout) = 0;
  // Stores the slot's certificate and signs the confirmation over `challenge`.
  [[nodiscard]] virtual StatusOr<EcuCertificateAnswer> StoreCertificate(
      const EcuUid& uid, const std::string& slot, const std::string& certificate_pem,
      std::span<const uint8_t> challenge, std::chrono::milliseconds timeout) = 0;
};

// EcuLink to keyline-ecu-sim over CurveZMQ (schemas/ecu_link.fbs). A simulated silence
// (time-out or power-loss fault) is held until `timeout` has passed, like a real one.
// Not thread-safe: one call at a time.
struct SimulatorEcuLinkOptions {
  std::string endpoint;                  // the simulator's [ecu] listen, e.g. tcp://sim:7300
  broker::CurvePublicKey server_key{};   // the simulator's public key
  broker::CurveKeyPair keys;             // this injector's key pair (a [[client]] there)
};
[[nodiscard]] StatusOr<std::unique_ptr<EcuLink>> ConnectSimulatorEcuLink(
    SimulatorEcuLinkOptions options);

}  // namespace keyline::injector

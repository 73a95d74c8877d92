// The simulated ECUs' asymmetric identities: per ECU and certificate slot, a P-256 key pair made
// inside the ECU's simulated HSM (a software custody) and the certificate stored for it.
//
// The private key leaves the custody only wrapped under its master key (WrapForStorage), in the
// identities file: one line per change, "uid slot wrapped-key certificate" (hex; "-" for no
// certificate yet), synced before the answer goes out (durable_file.h). Opening replays the
// file (last line per ECU slot wins), drops a torn last line and rewrites it compacted.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"
#include "durable_file.h"

namespace keyline::ecu_sim {

// What GenerateKeyPair and StoreCertificate answer besides an error.
struct IdentityAnswer {
  // False: the certificate does not hold the slot's key, or the slot has no key pair.
  bool matches = true;
  std::string csr;                 // GenerateKeyPair: PEM
  std::vector<uint8_t> signature;  // StoreCertificate: DER ECDSA over the confirmation message
};

class EcuIdentities {
 public:
  // `master_key_file` is created (0600) when absent.
  static StatusOr<std::unique_ptr<EcuIdentities>> Open(const std::filesystem::path& file,
                                                       const std::filesystem::path& master_key_file);
  ~EcuIdentities();

  // The slot's key pair (made on first use, then always the same) and a CSR signed by it:
  // subject serialNumber = the UID in hex, challengePassword = hex(challenge).
  [[nodiscard]] StatusOr<IdentityAnswer> GenerateKeyPair(const std::array<uint8_t, 15>& uid,
                                                         const std::string& slot,
                                                         std::span<const uint8_t> challenge);
  // Stores `certificate_pem` if it holds the slot's public key, and signs
  // hsm::CertificateConfirmationMessage(uid, challenge) with the slot's key.
  [[nodiscard]] StatusOr<IdentityAnswer> StoreCertificate(const std::array<uint8_t, 15>& uid,
                                                          const std::string& slot,
                                                          const std::string& certificate_pem,
                                                          std::span<const uint8_t> challenge);

  // Per ECU, its certificate slots and the certificate each holds ("" when none yet).
  using CertificateMap = std::map<std::array<uint8_t, 15>, std::map<std::string, std::string>>;
  CertificateMap Certificates() const;
  // The same from an identities file, without its master key (status of a stopped simulator).
  [[nodiscard]] static StatusOr<CertificateMap> ReadCertificates(const std::filesystem::path& file);

  struct Identity {
    hsm::WrappedKey wrapped;
    hsm::KeyHandle key;  // unwrapped on first use
    std::string certificate;
  };
  using SlotKey = std::pair<std::array<uint8_t, 15>, std::string>;

 private:
  EcuIdentities(std::filesystem::path file, std::unique_ptr<hsm::KeyCustody> custody)
      : file_(std::move(file)), custody_(std::move(custody)) {}
  Status Compact();
  Status Append(const SlotKey& key, const Identity& identity);
  StatusOr<hsm::KeyHandle> KeyOf(const SlotKey& key, Identity& identity);

  std::filesystem::path file_;
  std::unique_ptr<hsm::KeyCustody> custody_;
  std::map<SlotKey, Identity> identities_;
  std::optional<AppendOnlyFile> appender_;  // the identities file, once compacted
};

}  // namespace keyline::ecu_sim

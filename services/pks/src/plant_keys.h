// The plant's keys inside its HSM adapter, and the two SHE jobs the PKS does with them:
// computing M1..M3 for a reserved key set, and checking the ECU's M4/M5.
//
// Key bytes never reach this code: it holds handles and sealed blobs only (docs/key-flow.md).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <utility>
#include <string>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"
#include "keyline/hsm/x509.h"
#include "plant_config.h"

namespace keyline::pks {

struct KeySet;

// M1..M3 of one slot, with the layout they were computed for.
struct SlotLoad {
  SlotConfig layout;
  hsm::SheLoadMessages messages;
  hsm::SheProof expected;              // the M4/M5 the ECU must answer
  hsm::SheProofDigest proof_digest{};  // of `expected`, for the injector
};

// What the ECU answered for one slot, as the injector reported it.
struct SlotReport {
  uint8_t slot = 0;
  std::optional<hsm::SheProof> proof;  // present when the ECU answered M4/M5
  std::string ecu_error;               // EcuError name; "NONE" when it answered
};

// The PKS's verdict on one slot.
struct SlotVerdict {
  SlotConfig layout;
  std::optional<hsm::SheProof> proof;  // as reported (kept in the record even when wrong)
  bool proven = false;
  std::string problem;  // "slot 4: WRONG_PROOF (M4/M5 do not prove the load)"; empty if proven
};

class PlantKeys {
 public:
  // Opens (creating on first start) the plant's named keys in `custody`, which must outlive
  // this object.
  static StatusOr<std::unique_ptr<PlantKeys>> Open(hsm::KeyCustody* custody);
  ~PlantKeys();

  hsm::KeyCustody& custody() { return *custody_; }
  hsm::KeyHandle signing_key() const { return signing_; }
  hsm::KeyHandle transfer_key() const { return transfer_; }

  // Unwraps a stored transport key once and keeps the handle (its SHE derivations are cached
  // with it). Thread-safe.
  [[nodiscard]] StatusOr<hsm::KeyHandle> TransportKey(const std::string& ref,
                                                      const std::vector<uint8_t>& wrapped);

  // Opens `key_set` and computes M1..M3 for every slot of `layout` (load order) for `uid`,
  // with the digest of the proof each load must bring back.
  // kDataLoss / kPermissionDenied: the key set does not open here (tampered, or sealed for
  // another plant) and must never be served; other errors are the HSM's (retry later).
  [[nodiscard]] StatusOr<std::vector<SlotLoad>> ComputeLoads(
      const std::string& plant_id, const KeySet& key_set, const std::vector<SlotConfig>& layout,
      hsm::KeyHandle transport_key, const hsm::SheUid& uid);

  // Checks the reported M4/M5 of every slot of `layout`: against the proofs the reservation
  // expects when it holds them (no key is opened), else against the keys of `key_set`.
  [[nodiscard]] StatusOr<std::vector<SlotVerdict>> CheckProofs(
      const std::string& plant_id, const KeySet& key_set, const std::vector<SlotConfig>& layout,
      const hsm::SheUid& uid, const std::vector<SlotReport>& reports);

  // OK when `key_set` opens with this plant's key (its keys are dropped at once).
  [[nodiscard]] Status CheckOpens(const std::string& plant_id, const KeySet& key_set);

  // A CSR for the issuing-CA key `key_name` (P-256, created in the HSM on first use, the same
  // key ever after), carrying the KMS's `challenge` (docs/certificates.md).
  [[nodiscard]] StatusOr<std::string> IssuingCaCsr(const std::string& key_name,
                                                   const hsm::CertificateSubject& subject,
                                                   std::span<const uint8_t> challenge);

  // OK when `ca`'s certificate holds the public half of its key in this HSM and chains to its
  // OEM CA now: a CA that fails this never signs here.
  [[nodiscard]] Status CheckIssuingCa(const IssuingCaConfig& ca);

  // CheckIssuingCa, remembered for a minute per CA certificate: issuing one ECU certificate
  // must not verify the CA's chain again each time. Thread-safe.
  [[nodiscard]] Status CheckIssuingCaRecently(const IssuingCaConfig& ca);

  // An ECU certificate for the key of `csr` (checked by hsm::CheckCsr), signed by `ca`'s key in
  // this HSM. The CA is prepared once per certificate (hsm::EndEntityIssuer), not for every ECU.
  [[nodiscard]] StatusOr<std::string> IssueEcuCertificate(const IssuingCaConfig& ca, const hsm::CheckedCsr& csr,
                                                          const hsm::EndEntityProfile& profile);

  // The public key (DER SPKI) of an ECU certificate: remembered from IssueEcuCertificate until
  // asked for once, else read from the PEM (after a restart).
  [[nodiscard]] StatusOr<std::vector<uint8_t>> EcuCertificateKey(const std::string& certificate_pem);

  // `size` random bytes from the HSM (challenges).
  [[nodiscard]] StatusOr<std::vector<uint8_t>> Random(size_t size) { return custody_->Random(size); }

  // Signs `bytes` with the plant's record-signing key.
  [[nodiscard]] StatusOr<hsm::Signature> SignRecord(std::span<const uint8_t> bytes);

 private:
  PlantKeys() = default;
  // The key set's keys, one per slot in its own order.
  StatusOr<std::vector<hsm::ScopedKey>> Open(const std::string& plant_id, const KeySet& key_set);

  hsm::KeyCustody* custody_ = nullptr;
  hsm::KeyHandle signing_;
  hsm::KeyHandle transfer_;
  std::mutex mu_;
  std::map<std::string, hsm::KeyHandle> transport_;
  // Issuing CA key name -> (the certificate checked, when), for CheckIssuingCaRecently.
  std::map<std::string, std::pair<std::string, int64_t>> checked_cas_;
  // Issuing CA key name -> its certificate and the issuer prepared from it.
  std::map<std::string, std::pair<std::string, std::unique_ptr<hsm::EndEntityIssuer>>> issuers_;
  // Certificate PEM -> its key, for EcuCertificateKey; bounded (see plant_keys.cc).
  std::map<std::string, std::vector<uint8_t>> issued_keys_;
};

// The context a key set is sealed with (docs/key-flow.md).
std::string KeySetContext(const std::string& key_set_id, const std::string& plant_id);
// The context a transport key is stored with.
std::string TransportKeyContext(const std::string& ref);

}  // namespace keyline::pks

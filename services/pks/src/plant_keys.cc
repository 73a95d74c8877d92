#include "plant_keys.h"

#include <algorithm>
#include <chrono>

#include "plant_state.h"

namespace keyline::pks {

std::string KeySetContext(const std::string& key_set_id, const std::string& plant_id) {
  return "keyset/" + key_set_id + "/plant/" + plant_id;
}

std::string TransportKeyContext(const std::string& ref) { return "transport/" + ref; }

StatusOr<std::unique_ptr<PlantKeys>> PlantKeys::Open(hsm::KeyCustody* custody) {
  std::unique_ptr<PlantKeys> keys(new PlantKeys());
  keys->custody_ = custody;
  ASSIGN_OR_RETURN(keys->signing_, custody->GetOrCreateNamedKey("pks-signing", hsm::KeyKind::kEd25519));
  ASSIGN_OR_RETURN(keys->transfer_, custody->GetOrCreateNamedKey("pks-transfer", hsm::KeyKind::kX25519));
  return keys;
}

PlantKeys::~PlantKeys() {
  for (auto& [ref, handle] : transport_) (void)custody_->DestroyKey(handle);
}

StatusOr<hsm::KeyHandle> PlantKeys::TransportKey(const std::string& ref,
                                                 const std::vector<uint8_t>& wrapped) {
  std::lock_guard lock(mu_);
  auto it = transport_.find(ref);
  if (it != transport_.end()) return it->second;
  ASSIGN_OR_RETURN(hsm::KeyHandle handle,
                   custody_->UnwrapFromStorage(hsm::WrappedKey{wrapped}, TransportKeyContext(ref)));
  transport_.emplace(ref, handle);
  return handle;
}

StatusOr<std::vector<hsm::ScopedKey>> PlantKeys::Open(const std::string& plant_id,
                                                      const KeySet& key_set) {
  ASSIGN_OR_RETURN(std::vector<hsm::KeyHandle> handles,
                   custody_->UnwrapFromPeer(transfer_, hsm::WrappedKeySet{key_set.wrapped},
                                            KeySetContext(key_set.id, plant_id)));
  std::vector<hsm::ScopedKey> keys;
  for (hsm::KeyHandle handle : handles) keys.emplace_back(custody_, handle);
  if (keys.size() != key_set.slots.size()) {
    return DataLossError("key set " + key_set.id + " holds " + std::to_string(keys.size()) +
                         " keys for " + std::to_string(key_set.slots.size()) + " slots");
  }
  return keys;
}

namespace {

// Index of `slot` in the key set's own slot list.
std::optional<size_t> IndexOf(const KeySet& key_set, uint8_t slot) {
  auto it = std::find(key_set.slots.begin(), key_set.slots.end(), slot);
  if (it == key_set.slots.end()) return std::nullopt;
  return static_cast<size_t>(it - key_set.slots.begin());
}

}  // namespace

StatusOr<std::vector<SlotLoad>> PlantKeys::ComputeLoads(const std::string& plant_id,
                                                        const KeySet& key_set,
                                                        const std::vector<SlotConfig>& layout,
                                                        hsm::KeyHandle transport_key,
                                                        const hsm::SheUid& uid) {
  ASSIGN_OR_RETURN(std::vector<hsm::ScopedKey> keys, Open(plant_id, key_set));
  std::vector<SlotLoad> loads;
  std::vector<uint8_t> loaded;
  for (const SlotConfig& slot : layout) {
    std::optional<size_t> index = IndexOf(key_set, slot.slot);
    if (!index) {
      return DataLossError("key set " + key_set.id + " has no key for slot " +
                           std::to_string(slot.slot));
    }
    hsm::SheLoadRequest request;
    request.new_key = keys[*index].get();
    // The authorising key: one this key set loaded earlier, else the transport key standing
    // in for a blank ECU's MASTER_ECU_KEY (the layout was checked when configured).
    bool earlier = std::find(loaded.begin(), loaded.end(), slot.auth_slot) != loaded.end();
    if (earlier) {
      request.auth_key = keys[*IndexOf(key_set, slot.auth_slot)].get();
    } else {
      request.auth_key = transport_key;
    }
    request.fields.uid = uid;
    request.fields.slot = slot.slot;
    request.fields.auth_slot = slot.auth_slot;
    request.fields.counter = slot.counter;
    request.flags = slot.flags;
    ASSIGN_OR_RETURN(hsm::SheLoadMessages messages, custody_->ComputeSheLoad(request));
    ASSIGN_OR_RETURN(hsm::SheProof expected, custody_->ComputeSheProof(request.new_key,
                                                                       request.fields));
    loads.push_back(SlotLoad{slot, messages, expected, hsm::DigestSheProof(expected)});
    loaded.push_back(slot.slot);
  }
  return loads;
}

StatusOr<std::vector<SlotVerdict>> PlantKeys::CheckProofs(const std::string& plant_id,
                                                          const KeySet& key_set,
                                                          const std::vector<SlotConfig>& layout,
                                                          const hsm::SheUid& uid,
                                                          const std::vector<SlotReport>& reports) {
  const std::vector<hsm::SheProof>* expected =
      key_set.reservation && key_set.reservation->expected_proofs.size() == layout.size()
          ? &key_set.reservation->expected_proofs
          : nullptr;
  std::vector<hsm::ScopedKey> keys;
  if (expected == nullptr) {
    ASSIGN_OR_RETURN(keys, Open(plant_id, key_set));
  }
  std::vector<SlotVerdict> verdicts;
  for (size_t i = 0; i < layout.size(); ++i) {
    const SlotConfig& slot = layout[i];
    SlotVerdict verdict;
    verdict.layout = slot;
    std::string name = "slot " + std::to_string(slot.slot);
    auto report = std::find_if(reports.begin(), reports.end(),
                               [&](const SlotReport& r) { return r.slot == slot.slot; });
    std::optional<size_t> index = IndexOf(key_set, slot.slot);
    if (report == reports.end()) {
      verdict.problem = name + ": no result reported";
    } else if (!index) {
      verdict.problem = name + ": the key set holds no key for it";
    } else {
      verdict.proof = report->proof;
      if (!report->proof) {
        verdict.problem = name + ": " + report->ecu_error;
      } else {
        bool proves = false;
        if (expected != nullptr) {
          // M4/M5 are a deterministic function of key, UID, slots and counter.
          proves = (*expected)[i].m4 == report->proof->m4 && (*expected)[i].m5 == report->proof->m5;
        } else {
          ASSIGN_OR_RETURN(hsm::SheProofCheck check,
                           custody_->CheckSheProof(keys[*index].get(), *report->proof));
          proves = check.Proves(uid, slot.slot, slot.counter) && check.auth_slot == slot.auth_slot;
        }
        if (!proves) {
          verdict.problem = name + ": WRONG_PROOF (M4/M5 do not prove this load)";
        } else if (report->ecu_error != "NONE") {
          verdict.problem = name + ": " + report->ecu_error;
        } else {
          verdict.proven = true;
        }
      }
    }
    verdicts.push_back(std::move(verdict));
  }
  return verdicts;
}

Status PlantKeys::CheckOpens(const std::string& plant_id, const KeySet& key_set) {
  return Open(plant_id, key_set).status();
}

StatusOr<std::string> PlantKeys::IssuingCaCsr(const std::string& key_name,
                                              const hsm::CertificateSubject& subject,
                                              std::span<const uint8_t> challenge) {
  ASSIGN_OR_RETURN(hsm::KeyHandle key, custody_->GetOrCreateNamedKey(key_name, hsm::KeyKind::kEcdsaP256));
  return hsm::MakeCsr(*custody_, key, subject, challenge);
}

Status PlantKeys::CheckIssuingCa(const IssuingCaConfig& ca) {
  ASSIGN_OR_RETURN(hsm::KeyHandle key, custody_->GetOrCreateNamedKey(ca.key_name, hsm::KeyKind::kEcdsaP256));
  ASSIGN_OR_RETURN(std::vector<uint8_t> ours, custody_->GetPublicKeyInfo(key));
  ASSIGN_OR_RETURN(std::vector<uint8_t> certified, hsm::PublicKeyInfoOf(ca.certificate));
  if (ours != certified) {
    return PermissionDeniedError("issuing CA " + ca.key_name + ": the certificate is for another key than "
                                 "this HSM's");
  }
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  Status chains = hsm::VerifyChain(ca.certificate, {}, ca.oem_ca_certificate, now);
  if (!chains.ok()) return chains.WithContext("issuing CA " + ca.key_name);
  return Status::Ok();
}

Status PlantKeys::CheckIssuingCaRecently(const IssuingCaConfig& ca) {
  constexpr int64_t kRecheckAfterS = 60;
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  {
    std::lock_guard lock(mu_);
    auto it = checked_cas_.find(ca.key_name);
    if (it != checked_cas_.end() && it->second.first == ca.certificate &&
        now_s - it->second.second < kRecheckAfterS) {
      return Status::Ok();
    }
  }
  RETURN_IF_ERROR(CheckIssuingCa(ca));
  std::lock_guard lock(mu_);
  checked_cas_[ca.key_name] = {ca.certificate, now_s};
  return Status::Ok();
}

StatusOr<std::string> PlantKeys::IssueEcuCertificate(const IssuingCaConfig& ca, const hsm::CheckedCsr& csr,
                                                     const hsm::EndEntityProfile& profile) {
  // Reservations burned at their deadline never ask for their key: forget everything then.
  constexpr size_t kMaxRemembered = 100'000;
  std::lock_guard lock(mu_);
  auto& [certificate, issuer] = issuers_[ca.key_name];
  if (!issuer || certificate != ca.certificate) {
    ASSIGN_OR_RETURN(hsm::KeyHandle key,
                     custody_->GetOrCreateNamedKey(ca.key_name, hsm::KeyKind::kEcdsaP256));
    ASSIGN_OR_RETURN(issuer, hsm::EndEntityIssuer::Prepare(*custody_, key, ca.certificate));
    certificate = ca.certificate;
  }
  ASSIGN_OR_RETURN(std::string pem, issuer->Issue(csr, profile));
  if (issued_keys_.size() >= kMaxRemembered) issued_keys_.clear();
  issued_keys_[pem] = csr.spki_der;
  return pem;
}

StatusOr<std::vector<uint8_t>> PlantKeys::EcuCertificateKey(const std::string& certificate_pem) {
  {
    std::lock_guard lock(mu_);
    auto it = issued_keys_.find(certificate_pem);
    if (it != issued_keys_.end()) {
      std::vector<uint8_t> key = std::move(it->second);
      issued_keys_.erase(it);
      return key;
    }
  }
  return hsm::PublicKeyInfoOf(certificate_pem);
}

StatusOr<hsm::Signature> PlantKeys::SignRecord(std::span<const uint8_t> bytes) {
  return custody_->Sign(signing_, bytes);
}

}  // namespace keyline::pks

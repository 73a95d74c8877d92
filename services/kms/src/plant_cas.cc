#include "plant_cas.h"

#include <cstdio>
#include <memory>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "json_text.h"
#include "keyline/broker/queue_id.h"
#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/kms_pks_generated.h"
#include "keyline/wire/kms_store_generated.h"
#include "store_layout.h"

namespace keyline::kms {
namespace {

constexpr char kOemCaPrefix[] = "oem-ca/";
constexpr char kPlantCaPrefix[] = "plant-ca/";

std::string PlantCaKey(const PlantCaSpec& ca) {
  char generation[16];
  std::snprintf(generation, sizeof(generation), "%010u", ca.generation);
  return kPlantCaPrefix + ca.plant + "/" + ca.oem + "/" + generation;
}

std::chrono::sys_seconds NowSeconds() {
  return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
}

std::string SubjectText(const hsm::CertificateSubject& s) {
  std::string out;
  auto add = [&](const char* name, const std::string& value) {
    if (value.empty()) return;
    out += (out.empty() ? "" : ", ") + std::string(name) + "=" + value;
  };
  add("C", s.country);
  add("O", s.organization);
  add("OU", s.organizational_unit);
  add("CN", s.common_name);
  add("serialNumber", s.serial_number);
  return out;
}

PlantCaSpec ReadPlantCa(const wire::KmsPlantCa& stored) {
  PlantCaSpec ca;
  ca.plant = std::string(schemas::Text(stored.plant()));
  ca.oem = std::string(schemas::Text(stored.oem()));
  ca.generation = stored.generation();
  ca.state = static_cast<PlantCaState>(stored.state());
  ca.request_id = std::string(schemas::Text(stored.request_id()));
  ca.key_name = std::string(schemas::Text(stored.key_name()));
  ca.subject.organization = std::string(schemas::Text(stored.organization()));
  ca.subject.organizational_unit = std::string(schemas::Text(stored.organizational_unit()));
  ca.subject.common_name = std::string(schemas::Text(stored.common_name()));
  auto challenge = schemas::Bytes(stored.challenge());
  ca.challenge.assign(challenge.begin(), challenge.end());
  ca.csr = std::string(schemas::Text(stored.csr()));
  ca.certificate = std::string(schemas::Text(stored.certificate()));
  ca.requested_at_us = stored.requested_at_us();
  ca.changed_at_us = stored.changed_at_us();
  ca.revoke_reason = std::string(schemas::Text(stored.revoke_reason()));
  return ca;
}

}  // namespace

std::string_view PlantCaStateName(PlantCaState state) {
  switch (state) {
    case PlantCaState::kRequested:
      return "requested";
    case PlantCaState::kCsrReceived:
      return "csr_received";
    case PlantCaState::kActive:
      return "active";
    case PlantCaState::kRevoked:
      return "revoked";
  }
  return "unknown";
}

Status PlantCas::Load() {
  std::lock_guard lock(mu_);
  failed_writes_.Arm(*context_);
  return LoadLocked();
}

Status PlantCas::LoadLocked() {
  oem_cas_.clear();
  plant_cas_.clear();
  std::unique_ptr<rocksdb::Iterator> it(context_->database->db()->NewIterator(
      rocksdb::ReadOptions(), context_->Family(layout::kCatalog)));
  for (it->Seek(kOemCaPrefix); it->Valid() && it->key().starts_with(kOemCaPrefix); it->Next()) {
    const std::string key = it->key().ToString();
    const std::string copy = it->value().ToString();  // aligned for FlatBuffers
    ASSIGN_OR_RETURN(const wire::KmsOemCa* stored, schemas::DecodeVerified<wire::KmsOemCa>(AsBytes(copy), key));
    oem_cas_[std::string(schemas::Text(stored->oem()))] = std::string(schemas::Text(stored->certificate()));
  }
  for (it->Seek(kPlantCaPrefix); it->Valid() && it->key().starts_with(kPlantCaPrefix); it->Next()) {
    const std::string key = it->key().ToString();
    const std::string copy = it->value().ToString();
    ASSIGN_OR_RETURN(const wire::KmsPlantCa* stored, schemas::DecodeVerified<wire::KmsPlantCa>(AsBytes(copy), key));
    PlantCaSpec ca = ReadPlantCa(*stored);
    plant_cas_[{ca.plant, ca.oem}].push_back(std::move(ca));  // keys sort by generation
  }
  if (!it->status().ok()) return UnavailableError("reading the CAs: " + it->status().ToString());
  return Status::Ok();
}

void PlantCas::ReloadAfterFailedWriteLocked() {
  if (!failed_writes_.FailedSinceLastLook(*context_)) return;
  Status reloaded = LoadLocked();
  if (!reloaded.ok()) spdlog::error("kms: reloading the CAs after a failed write: {}", reloaded.ToString());
}

PlantCaSpec* PlantCas::CurrentLocked(const std::string& plant, const std::string& oem) {
  auto it = plant_cas_.find({plant, oem});
  if (it == plant_cas_.end() || it->second.empty()) return nullptr;
  return &it->second.back();
}

void PlantCas::PutLocked(broker::WriteContext& write, const PlantCaSpec& ca) {
  flatbuffers::FlatBufferBuilder fbb(2048);
  fbb.Finish(wire::CreateKmsPlantCaDirect(
      fbb, ca.plant.c_str(), ca.oem.c_str(), ca.generation, static_cast<wire::PlantCaState>(ca.state),
      ca.request_id.c_str(), ca.key_name.c_str(), ca.subject.organization.c_str(),
      ca.subject.organizational_unit.c_str(), ca.subject.common_name.c_str(), &ca.challenge,
      ca.csr.c_str(), ca.certificate.c_str(), ca.requested_at_us, ca.changed_at_us,
      ca.revoke_reason.c_str()));
  write.batch().Put(context_->Family(layout::kCatalog), PlantCaKey(ca), FinishedText(fbb));
}

Status PlantCas::ImportOemCa(const std::string& oem, const std::string& certificate_pem,
                             const std::string& actor) {
  if (!catalog_->Oem(oem)) return NotFoundError("OEM " + oem + " is not registered (keylinectl oem add first)");
  auto inspected = hsm::InspectCertificate(certificate_pem);
  if (!inspected.ok()) return inspected.status().WithContext("OEM CA certificate for " + oem);
  const hsm::CertificateInfo& info = *inspected;
  if (!info.is_ca) {
    return InvalidArgumentError("OEM CA certificate for " + oem + " is not a CA certificate "
                                "(basicConstraints CA:TRUE is missing)");
  }
  if (!info.self_signed) {
    return InvalidArgumentError("OEM CA certificate for " + oem + " (" + SubjectText(info.subject) +
                                ") is not self-signed: import the OEM's root, the trust anchor");
  }
  Status valid = hsm::VerifyChain(certificate_pem, {}, certificate_pem, NowSeconds());
  if (!valid.ok()) return valid.WithContext("OEM CA certificate for " + oem);

  return context_->store->Commit([&](broker::WriteContext& write) -> Status {
    std::lock_guard lock(mu_);
    ReloadAfterFailedWriteLocked();
    if (auto it = oem_cas_.find(oem); it != oem_cas_.end()) {
      if (it->second == certificate_pem) return Status::Ok();
      std::string in_use;
      for (const auto& [key, generations] : plant_cas_) {
        if (key.second == oem && generations.back().state != PlantCaState::kRevoked) {
          in_use += (in_use.empty() ? "" : ", ") + key.first;
        }
      }
      if (!in_use.empty()) {
        return FailedPreconditionError("OEM " + oem + " already has another CA certificate, and the "
                                       "issuing CAs of " + in_use + " chain to it: revoke them first");
      }
    }
    flatbuffers::FlatBufferBuilder fbb(certificate_pem.size() + 128);
    fbb.Finish(wire::CreateKmsOemCaDirect(fbb, oem.c_str(), certificate_pem.c_str(), NowUs()));
    write.batch().Put(context_->Family(layout::kCatalog), kOemCaPrefix + oem, FinishedText(fbb));
    audit_->Append(write, actor, "oem_ca.import", oem,
                   "{\"subject\":" + JsonQuote(SubjectText(info.subject)) + ",\"serial\":\"" +
                       info.serial_hex + "\",\"not_after\":" +
                       JsonQuote(Rfc3339(info.validity.not_after.time_since_epoch().count() * 1'000'000)) + "}");
    oem_cas_[oem] = certificate_pem;
    return Status::Ok();
  });
}

StatusOr<PlantCaSpec> PlantCas::Issue(const std::string& plant, const std::string& oem,
                                      const std::string& actor) {
  if (!catalog_->Plant(plant)) return NotFoundError("plant " + plant + " is not registered");
  if (!catalog_->Oem(oem)) return NotFoundError("OEM " + oem + " is not registered");
  PlantCaSpec result;
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    std::lock_guard lock(mu_);
    ReloadAfterFailedWriteLocked();
    auto root = oem_cas_.find(oem);
    if (root == oem_cas_.end()) {
      return FailedPreconditionError("OEM " + oem + " has no CA certificate yet (keylinectl oem ca "
                                     "import --oem " + oem + " --cert FILE first)");
    }
    PlantCaSpec* current = CurrentLocked(plant, oem);
    if (current != nullptr && current->state != PlantCaState::kRevoked) {
      result = *current;
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(hsm::CertificateInfo root_info, hsm::InspectCertificate(root->second));
    PlantCaSpec ca;
    ca.plant = plant;
    ca.oem = oem;
    ca.generation = current == nullptr ? 1 : current->generation + 1;
    ca.state = PlantCaState::kRequested;
    ca.request_id = plant + "/" + oem + "/" + std::to_string(ca.generation);
    ca.key_name = "plant-ca/" + oem + "/" + std::to_string(ca.generation);
    ca.subject.organization = root_info.subject.organization.empty() ? oem : root_info.subject.organization;
    ca.subject.organizational_unit = plant;
    ca.subject.common_name = oem + " issuing CA " + plant + " " + std::to_string(ca.generation);
    ASSIGN_OR_RETURN(ca.challenge, context_->custody->Random(schemas::kCaChallengeBytes));
    ca.requested_at_us = NowUs();
    ca.changed_at_us = ca.requested_at_us;

    flatbuffers::FlatBufferBuilder fbb(512);
    fbb.Finish(wire::CreatePlantCaRequestDirect(
        fbb, ca.request_id.c_str(), oem.c_str(), ca.key_name.c_str(), ca.subject.organization.c_str(),
        ca.subject.organizational_unit.c_str(), ca.subject.common_name.c_str(), &ca.challenge));
    RETURN_IF_ERROR(write.Send({plant, "control"}, wire::MessageType::PlantCaRequest,
                               schemas::FinishedBytes(fbb))
                        .status());
    PutLocked(write, ca);
    audit_->Append(write, actor, "plant_ca.request", ca.request_id,
                   "{\"key_name\":" + JsonQuote(ca.key_name) + ",\"subject\":" +
                       JsonQuote(SubjectText(ca.subject)) + "}");
    plant_cas_[{plant, oem}].push_back(ca);
    result = std::move(ca);
    return Status::Ok();
  });
  RETURN_IF_ERROR(committed);
  return result;
}

Status PlantCas::ReceiveCsr(const std::string& plant, const std::string& request_id,
                            const std::string& csr_pem, broker::WriteContext& write) {
  std::lock_guard lock(mu_);
  ReloadAfterFailedWriteLocked();
  PlantCaSpec* ca = nullptr;
  for (auto& [key, generations] : plant_cas_) {
    for (PlantCaSpec& g : generations) {
      if (g.request_id == request_id) ca = &g;
    }
  }
  const std::string what = "PlantCaCsr for " + request_id + " from " + plant;
  if (ca == nullptr) return NotFoundError(what + ": no such plant CA request");
  if (ca->plant != plant) return PermissionDeniedError(what + ": the request was sent to " + ca->plant);
  if (ca->state != PlantCaState::kRequested) {
    spdlog::info("kms: {}: the CA is {} already; ignored", what, PlantCaStateName(ca->state));
    return Status::Ok();
  }
  auto checked = hsm::CheckCsr(csr_pem, ca->challenge);
  if (!checked.ok()) return checked.status().WithContext(what);
  if (!(checked->subject == ca->subject)) {
    return PermissionDeniedError(what + ": asks for subject \"" + SubjectText(checked->subject) +
                                 "\", not \"" + SubjectText(ca->subject) + "\"");
  }
  ca->csr = csr_pem;
  ca->state = PlantCaState::kCsrReceived;
  ca->changed_at_us = NowUs();
  PutLocked(write, *ca);
  audit_->Append(write, plant, "plant_ca.csr", request_id, "{\"key_name\":" + JsonQuote(ca->key_name) + "}");
  spdlog::info("kms: plant CA {}: CSR received; waiting for the OEM CA's certificate", request_id);
  return Status::Ok();
}

StatusOr<PlantCaSpec> PlantCas::Install(const std::string& plant, const std::string& oem,
                                        const std::string& request_id,
                                        const std::string& certificate_pem,
                                        const std::string& actor) {
  PlantCaSpec result;
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    std::unique_lock lock(mu_);
    ReloadAfterFailedWriteLocked();
    PlantCaSpec* ca = CurrentLocked(plant, oem);
    if (ca == nullptr || ca->request_id != request_id) {
      return NotFoundError("plant " + plant + " has no open CA request " + request_id + " for OEM " + oem);
    }
    const std::string what = "plant CA " + request_id;
    switch (ca->state) {
      case PlantCaState::kRequested:
        return FailedPreconditionError(what + ": the plant has not sent its CSR yet");
      case PlantCaState::kActive:
        if (ca->certificate == certificate_pem) {
          result = *ca;
          return Status::Ok();
        }
        return AlreadyExistsError(what + " already has another certificate");
      case PlantCaState::kRevoked:
        return FailedPreconditionError(what + " is revoked");
      case PlantCaState::kCsrReceived:
        break;
    }
    auto inspected = hsm::InspectCertificate(certificate_pem);
    if (!inspected.ok()) return inspected.status().WithContext(what);
    const hsm::CertificateInfo& info = *inspected;
    auto root = oem_cas_.find(oem);
    if (root == oem_cas_.end()) return FailedPreconditionError(what + ": OEM " + oem + " has no CA certificate");
    Status chains = hsm::VerifyChain(certificate_pem, {}, root->second, NowSeconds());
    if (!chains.ok()) return chains.WithContext(what + ": the certificate does not chain to OEM " + oem + "'s CA");
    if (!info.is_ca || info.path_length != 0) {
      return InvalidArgumentError(what + ": the certificate must be a CA certificate with path length 0");
    }
    ASSIGN_OR_RETURN(hsm::CheckedCsr csr, hsm::CheckCsr(ca->csr, ca->challenge));
    if (info.spki_der != csr.spki_der) {
      return PermissionDeniedError(what + ": the certificate is for another key than the plant's CSR");
    }
    if (!(info.subject == ca->subject)) {
      return InvalidArgumentError(what + ": the certificate names \"" + SubjectText(info.subject) +
                                  "\", the CSR \"" + SubjectText(ca->subject) + "\"");
    }
    ca->certificate = certificate_pem;
    ca->state = PlantCaState::kActive;
    ca->changed_at_us = NowUs();
    PutLocked(write, *ca);
    audit_->Append(write, actor, "plant_ca.install", request_id,
                   "{\"serial\":\"" + info.serial_hex + "\",\"not_after\":" +
                       JsonQuote(Rfc3339(info.validity.not_after.time_since_epoch().count() * 1'000'000)) + "}");
    result = *ca;
    lock.unlock();  // the ConfigUpdate reads ActiveFor
    return catalog_->QueuePlantConfig(plant, write);
  });
  RETURN_IF_ERROR(committed);
  return result;
}

StatusOr<PlantCaSpec> PlantCas::Revoke(const std::string& plant, const std::string& oem,
                                       const std::string& reason, const std::string& actor) {
  if (!catalog_->Plant(plant)) return NotFoundError("plant " + plant + " is not registered");
  PlantCaSpec result;
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    std::unique_lock lock(mu_);
    ReloadAfterFailedWriteLocked();
    PlantCaSpec* ca = CurrentLocked(plant, oem);
    if (ca == nullptr || ca->state == PlantCaState::kRevoked) {
      return NotFoundError("plant " + plant + " has no issuing CA for OEM " + oem + " to revoke");
    }
    const bool was_shipped = ca->state == PlantCaState::kActive;
    ca->state = PlantCaState::kRevoked;
    ca->revoke_reason = reason;
    ca->changed_at_us = NowUs();
    PutLocked(write, *ca);
    audit_->Append(write, actor, "plant_ca.revoke", ca->request_id, "{\"reason\":" + JsonQuote(reason) + "}");
    result = *ca;
    lock.unlock();
    return was_shipped ? catalog_->QueuePlantConfig(plant, write) : Status::Ok();
  });
  RETURN_IF_ERROR(committed);
  return result;
}

std::vector<IssuingCaConfig> PlantCas::ActiveFor(const std::string& plant) const {
  std::lock_guard lock(mu_);
  std::vector<IssuingCaConfig> out;
  for (const auto& [key, generations] : plant_cas_) {
    if (key.first != plant) continue;
    const PlantCaSpec& ca = generations.back();
    if (ca.state != PlantCaState::kActive) continue;
    auto root = oem_cas_.find(ca.oem);
    out.push_back({ca.oem, ca.key_name, ca.certificate, root == oem_cas_.end() ? "" : root->second});
  }
  return out;
}

std::optional<std::string> PlantCas::OemCaCertificate(const std::string& oem) const {
  std::lock_guard lock(mu_);
  auto it = oem_cas_.find(oem);
  if (it == oem_cas_.end()) return std::nullopt;
  return it->second;
}

std::vector<PlantCaSpec> PlantCas::All() const {
  std::lock_guard lock(mu_);
  std::vector<PlantCaSpec> out;
  for (const auto& [key, generations] : plant_cas_) out.insert(out.end(), generations.begin(), generations.end());
  return out;
}

}  // namespace keyline::kms

#include "ecu_identities.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "keyline/common/hex.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/certificate_slot.h"

namespace keyline::ecu_sim {
namespace {

std::span<const uint8_t> AsBytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

std::string WrapContext(const std::array<uint8_t, 15>& uid, const std::string& slot) {
  return "ecu-identity/" + ToHex(uid) + "/" + slot;
}

std::string Line(const std::array<uint8_t, 15>& uid, const std::string& slot,
                 const hsm::WrappedKey& wrapped, const std::string& certificate) {
  std::vector<uint8_t> cert(certificate.begin(), certificate.end());
  return ToHex(uid) + " " + slot + " " + ToHex(wrapped.bytes) + " " +
         (certificate.empty() ? std::string("-") : ToHex(cert)) + "\n";
}

// Every identity in `file` (last line per ECU slot wins); absent file: none.
StatusOr<std::map<EcuIdentities::SlotKey, EcuIdentities::Identity>> ReadIdentities(
    const std::filesystem::path& file) {
  std::map<EcuIdentities::SlotKey, EcuIdentities::Identity> identities;
  std::ifstream in(file, std::ios::binary);
  if (!in) return identities;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  size_t number = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      spdlog::warn("{}: dropped a torn last line (the simulator was killed mid-write)",
                   file.string());
      break;
    }
    ++number;
    std::istringstream fields(text.substr(pos, end - pos));
    std::string uid_hex, slot, wrapped_hex, cert_hex;
    fields >> uid_hex >> slot >> wrapped_hex >> cert_hex;
    std::string where = file.string() + ": line " + std::to_string(number);
    auto uid = ParseHex(uid_hex, where + " uid", 15);
    auto wrapped = ParseHex(wrapped_hex, where + " key");
    if (!uid.ok() || !wrapped.ok() || !schemas::CheckCertificateSlotName(slot).ok() || cert_hex.empty()) {
      return DataLossError(where + ": not an identity line");
    }
    EcuIdentities::Identity identity;
    identity.wrapped.bytes = std::move(*wrapped);
    if (cert_hex != "-") {
      ASSIGN_OR_RETURN(std::vector<uint8_t> cert, ParseHex(cert_hex, where + " certificate"));
      identity.certificate.assign(cert.begin(), cert.end());
    }
    std::array<uint8_t, 15> key{};
    std::copy(uid->begin(), uid->end(), key.begin());
    identities.insert_or_assign({key, slot}, std::move(identity));
    pos = end + 1;
  }
  return identities;
}

}  // namespace

StatusOr<std::unique_ptr<EcuIdentities>> EcuIdentities::Open(
    const std::filesystem::path& file, const std::filesystem::path& master_key_file) {
  if (!std::filesystem::exists(master_key_file)) {
    RETURN_IF_ERROR(hsm::CreateMasterKeyFile(master_key_file, {}));
    spdlog::info("{}: created the ECUs' identity master key", master_key_file.string());
  }
  hsm::SoftwareCustodyOptions options;
  options.master_key_file = master_key_file;
  ASSIGN_OR_RETURN(std::unique_ptr<hsm::KeyCustody> custody, hsm::CreateSoftwareCustody(options));
  std::unique_ptr<EcuIdentities> identities(new EcuIdentities(file, std::move(custody)));
  ASSIGN_OR_RETURN(identities->identities_, ReadIdentities(file));
  RETURN_IF_ERROR(identities->Compact());
  return identities;
}

EcuIdentities::~EcuIdentities() = default;

Status EcuIdentities::Compact() {
  std::string text;
  for (const auto& [key, identity] : identities_) {
    text += Line(key.first, key.second, identity.wrapped, identity.certificate);
  }
  ASSIGN_OR_RETURN(AppendOnlyFile rewritten, AppendOnlyFile::Rewrite(file_, AsBytes(text)));
  appender_ = std::move(rewritten);
  return Status::Ok();
}

Status EcuIdentities::Append(const SlotKey& key, const Identity& identity) {
  return appender_->Append(AsBytes(Line(key.first, key.second, identity.wrapped, identity.certificate)));
}

StatusOr<hsm::KeyHandle> EcuIdentities::KeyOf(const SlotKey& key, Identity& identity) {
  if (!identity.key.valid()) {
    ASSIGN_OR_RETURN(identity.key, custody_->UnwrapFromStorage(
                                       identity.wrapped, WrapContext(key.first, key.second)));
  }
  return identity.key;
}

StatusOr<IdentityAnswer> EcuIdentities::GenerateKeyPair(const std::array<uint8_t, 15>& uid,
                                                        const std::string& slot,
                                                        std::span<const uint8_t> challenge) {
  RETURN_IF_ERROR(schemas::CheckCertificateSlotName(slot));
  SlotKey key{uid, slot};
  auto it = identities_.find(key);
  if (it == identities_.end()) {
    // Durable before the CSR goes out: a certificate issued for this key must find it again.
    ASSIGN_OR_RETURN(hsm::KeyHandle handle, custody_->GenerateKey(hsm::KeyKind::kEcdsaP256));
    Identity fresh;
    ASSIGN_OR_RETURN(fresh.wrapped, custody_->WrapForStorage(handle, WrapContext(uid, slot)));
    fresh.key = handle;
    RETURN_IF_ERROR(Append(key, fresh));
    it = identities_.emplace(key, std::move(fresh)).first;
    spdlog::info("ecu {}: key pair generated for certificate slot {}", ToHex(uid), slot);
  }
  ASSIGN_OR_RETURN(hsm::KeyHandle handle, KeyOf(key, it->second));
  hsm::CertificateSubject subject;
  subject.serial_number = ToHex(uid);
  IdentityAnswer answer;
  ASSIGN_OR_RETURN(answer.csr, hsm::MakeCsr(*custody_, handle, subject, challenge));
  return answer;
}

StatusOr<IdentityAnswer> EcuIdentities::StoreCertificate(const std::array<uint8_t, 15>& uid,
                                                         const std::string& slot,
                                                         const std::string& certificate_pem,
                                                         std::span<const uint8_t> challenge) {
  RETURN_IF_ERROR(schemas::CheckCertificateSlotName(slot));
  SlotKey key{uid, slot};
  auto it = identities_.find(key);
  IdentityAnswer answer;
  if (it == identities_.end()) {
    answer.matches = false;
    return answer;
  }
  ASSIGN_OR_RETURN(hsm::KeyHandle handle, KeyOf(key, it->second));
  auto certificate_key = hsm::PublicKeyInfoOf(certificate_pem);
  if (!certificate_key.ok()) return certificate_key.status();
  ASSIGN_OR_RETURN(std::vector<uint8_t> own_key, custody_->GetPublicKeyInfo(handle));
  if (*certificate_key != own_key) {
    answer.matches = false;
    return answer;
  }
  if (it->second.certificate != certificate_pem) {
    Identity updated = it->second;
    updated.certificate = certificate_pem;
    RETURN_IF_ERROR(Append(key, updated));
    it->second.certificate = certificate_pem;
    spdlog::info("ecu {}: certificate stored in slot {}", ToHex(uid), slot);
  }
  ASSIGN_OR_RETURN(answer.signature,
                   custody_->SignEcdsaSha256(handle, hsm::CertificateConfirmationMessage(uid, challenge)));
  return answer;
}

EcuIdentities::CertificateMap EcuIdentities::Certificates() const {
  CertificateMap out;
  for (const auto& [key, identity] : identities_) out[key.first][key.second] = identity.certificate;
  return out;
}

StatusOr<EcuIdentities::CertificateMap> EcuIdentities::ReadCertificates(
    const std::filesystem::path& file) {
  ASSIGN_OR_RETURN(auto identities, ReadIdentities(file));
  CertificateMap out;
  for (const auto& [key, identity] : identities) out[key.first][key.second] = identity.certificate;
  return out;
}

}  // namespace keyline::ecu_sim

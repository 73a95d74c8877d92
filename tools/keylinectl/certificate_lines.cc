#include "certificate_lines.h"

#include <vector>

#include "keyline/common/hex.h"
#include "keyline/hsm/key_custody.h"
#include "keyline/hsm/x509.h"

namespace keyline::keylinectl {
namespace {

std::string Text(const nlohmann::json& line, const char* key) {
  auto it = line.find(key);
  return it != line.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string CheckCertificateLine(const nlohmann::json& line, const std::string& oem_ca_pem,
                                 std::chrono::sys_seconds now) {
  const std::string slot = Text(line, "slot");
  const std::string certificate = Text(line, "certificate");
  const std::string chain = Text(line, "chain");
  auto uid = ParseHex(Text(line, "ecu_uid"), "ecu_uid", 15);
  auto challenge = ParseHex(Text(line, "confirm_challenge"), "confirm_challenge", 32);
  auto confirmation = ParseHex(Text(line, "confirmation"), "confirmation");
  if (slot.empty() || certificate.empty() || chain.empty() || !uid.ok() || !challenge.ok() ||
      !confirmation.ok() || confirmation->empty()) {
    return "certificate line without slot, certificate, chain, ecu_uid, confirm_challenge or confirmation";
  }
  const std::string where = "certificate slot " + slot + ": ";
  // Chain and validity: strict X.509 path from the ECU's certificate through the plant CA to
  // the OEM CA, every certificate valid now.
  Status chains = hsm::VerifyChain(certificate, std::vector<std::string>{chain}, oem_ca_pem, now);
  if (!chains.ok()) return where + chains.message();
  auto info = hsm::InspectCertificate(certificate);
  if (!info.ok()) return where + info.status().message();
  if (info->is_ca) return where + "the ECU's certificate is a CA certificate";
  if (info->subject.serial_number != ToHex(*uid)) {
    return where + "the certificate's serialNumber \"" + info->subject.serial_number +
           "\" is not the line's ecu_uid";
  }
  // The ECU signed the PKS's challenge with the certificate's key: it holds the key.
  Status confirmed = hsm::VerifyEcdsaSha256(
      info->spki_der, hsm::CertificateConfirmationMessage(*uid, *challenge), *confirmation);
  if (!confirmed.ok()) return where + "the ECU's confirmation does not verify: " + confirmed.message();
  return "";
}

}  // namespace keyline::keylinectl

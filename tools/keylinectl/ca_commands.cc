// keylinectl commands for certificate authorities (docs/certificates.md):
//
//   oem ca generate --oem O --dir DIR [--organization ORG] [--country CC] [--days N]
//       OEM stand-in: a P-256 root CA whose key stays in DIR (a software-HSM master key file,
//       0600) and DIR/oem-ca.pem, as `oem generate-batch` stands in for the OEM's key tooling.
//   oem ca import --oem O --cert FILE
//       registers the OEM CA's certificate at the KMS (the OEM keeps the key).
//   plant ca issue --plant P --oem O --oem-ca DIR [--days N] [--wait S]
//       the plant's HSM makes an issuing key and a CSR (through the KMS), the OEM CA in DIR
//       signs a path-length-0 CA certificate for it, the KMS ships it to the plant. If the plant
//       does not answer within --wait seconds the request stays open: run the command again.
//   plant ca revoke --plant P --oem O [--reason TEXT]
//   plant ca budget --plant P --oem O --min N --target N
//       the plant's issuing budget: it asks for more certificates when fewer than N remain, and
//       never holds more than --target granted and not yet reported (0 stops further grants).
//
// Exit status as every keylinectl command: 0 done, 1 refused or failed, 2 usage.
#include <sys/stat.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "admin_support.h"
#include "cli_values.h"
#include "command.h"
#include "keyline/common/hex.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"

namespace keyline::keylinectl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kMasterKeyFile[] = "oem-ca-master.key";
constexpr char kCertificateFile[] = "oem-ca.pem";

struct CaArgs {
  KmsConnection kms;
  std::string oem, plant, dir, cert, organization, country, reason;
  std::string budget_min, budget_target;
  int days = 0;
  int wait_s = 60;
  bool json = false;
};

std::string OemCaKeyName(const std::string& oem) { return "oem-ca/" + oem; }

StatusOr<std::string> ReadText(const fs::path& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError(std::string(what) + ": cannot read " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Status WriteNewFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return UnavailableError(path.string() + ": cannot write");
  return Status::Ok();
}

// The OEM stand-in's CA: its custody (the master key in DIR) and the key inside it.
struct OemCa {
  std::unique_ptr<hsm::KeyCustody> custody;
  hsm::KeyHandle key;
  std::string certificate;
};

StatusOr<OemCa> OpenOemCa(const fs::path& dir, const std::string& oem) {
  if (!fs::exists(dir / kMasterKeyFile)) {
    return InvalidArgumentError("--oem-ca: " + (dir / kMasterKeyFile).string() +
                                " does not exist (keylinectl oem ca generate --oem " + oem + " --dir DIR makes it)");
  }
  OemCa ca;
  hsm::SoftwareCustodyOptions options;
  options.master_key_file = dir / kMasterKeyFile;
  ASSIGN_OR_RETURN(ca.custody, hsm::CreateSoftwareCustody(options));
  ASSIGN_OR_RETURN(ca.key, ca.custody->GetOrCreateNamedKey(OemCaKeyName(oem), hsm::KeyKind::kEcdsaP256));
  ASSIGN_OR_RETURN(ca.certificate, ReadText(dir / kCertificateFile, "--oem-ca"));
  // The directory must hold this OEM's CA: its certificate carries the key the master key gives.
  ASSIGN_OR_RETURN(std::vector<uint8_t> spki, ca.custody->GetPublicKeyInfo(ca.key));
  ASSIGN_OR_RETURN(std::vector<uint8_t> certified, hsm::PublicKeyInfoOf(ca.certificate));
  if (spki != certified) {
    return InvalidArgumentError("--oem-ca: " + dir.string() + " is not the CA of OEM " + oem +
                                " (its certificate is for another key)");
  }
  return ca;
}

Status OemCaGenerate(const CaArgs& a, std::ostream& out) {
  const fs::path dir(a.dir);
  if (fs::exists(dir / kMasterKeyFile) || fs::exists(dir / kCertificateFile)) {
    return AlreadyExistsError(dir.string() + " already holds an OEM CA; not overwriting it");
  }
  if (a.days < 1 || a.days > 36500) return OutOfRangeError("--days must be 1..36500");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return UnavailableError(dir.string() + ": " + ec.message());
  RETURN_IF_ERROR(hsm::CreateMasterKeyFile(dir / kMasterKeyFile, {}));
  hsm::SoftwareCustodyOptions options;
  options.master_key_file = dir / kMasterKeyFile;
  ASSIGN_OR_RETURN(auto custody, hsm::CreateSoftwareCustody(options));
  ASSIGN_OR_RETURN(hsm::KeyHandle key, custody->GetOrCreateNamedKey(OemCaKeyName(a.oem), hsm::KeyKind::kEcdsaP256));
  hsm::CertificateSubject subject;
  subject.country = a.country;
  subject.organization = a.organization.empty() ? a.oem : a.organization;
  subject.common_name = a.oem + " root CA";
  ASSIGN_OR_RETURN(std::string pem, hsm::SelfSignCa(*custody, key, subject, hsm::ValidForDaysFromNow(a.days)));
  RETURN_IF_ERROR(WriteNewFile(dir / kCertificateFile, pem));
  const std::string cert_path = (dir / kCertificateFile).string();
  Print(out, a.json, {{"oem", a.oem}, {"certificate", cert_path}, {"key_dir", dir.string()}},
        "wrote " + cert_path + " (the key stays in " + (dir / kMasterKeyFile).string() +
            "); register the certificate with:\n  keylinectl oem ca import --oem " + a.oem + " --cert " + cert_path);
  return Status::Ok();
}

Status OemCaImport(const CaArgs& a, std::ostream& out) {
  ASSIGN_OR_RETURN(std::string pem, ReadText(a.cert, "--cert"));
  flatbuffers::FlatBufferBuilder fbb(pem.size() + 128);
  auto c = wire::CreateOemCaImportDirect(fbb, a.oem.c_str(), pem.c_str());
  ASSIGN_OR_RETURN(auto answer, Ask(a.kms, Finish(fbb, wire::AdminCommand::OemCaImport, c.Union())));
  Print(out, a.json, answer.json,
        "OEM " + a.oem + " CA registered: " + answer.json["subject"].get<std::string>() + ", serial " +
            answer.json["serial"].get<std::string>() + ", valid until " + answer.json["not_after"].get<std::string>());
  return Status::Ok();
}

StatusOr<json> AskIssue(const CaArgs& a) {
  flatbuffers::FlatBufferBuilder fbb;
  auto c = wire::CreatePlantCaIssueDirect(fbb, a.plant.c_str(), a.oem.c_str());
  ASSIGN_OR_RETURN(auto answer, Ask(a.kms, Finish(fbb, wire::AdminCommand::PlantCaIssue, c.Union())));
  return answer.json;
}

Status PlantCaIssue(const CaArgs& a, std::ostream& out) {
  if (a.days < 1 || a.days > 36500) return OutOfRangeError("--days must be 1..36500");
  ASSIGN_OR_RETURN(OemCa oem_ca, OpenOemCa(a.dir, a.oem));
  ASSIGN_OR_RETURN(json ca, AskIssue(a));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(a.wait_s);
  while (ca["state"] == "requested") {
    if (std::chrono::steady_clock::now() >= deadline) {
      return UnavailableError("plant " + a.plant + " has not answered CA request " +
                              ca["request_id"].get<std::string>() + " yet (is it connected?); the request " +
                              "stays open: run this command again later");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    ASSIGN_OR_RETURN(ca, AskIssue(a));
  }
  const std::string request_id = ca["request_id"];
  if (ca["state"] == "active") {
    Print(out, a.json, ca, "plant " + a.plant + " already has an issuing CA for " + a.oem + " (" + request_id + ")");
    return Status::Ok();
  }
  // The KMS checked the CSR when it arrived; the OEM side checks it again before it signs.
  ASSIGN_OR_RETURN(std::vector<uint8_t> challenge, ParseHex(ca["challenge"].get<std::string>(), "challenge"));
  ASSIGN_OR_RETURN(hsm::CheckedCsr csr, hsm::CheckCsr(ca["csr"].get<std::string>(), challenge));
  ASSIGN_OR_RETURN(std::string certificate,
                   hsm::IssueCaCertificate(*oem_ca.custody, oem_ca.key, oem_ca.certificate, csr,
                                           hsm::ValidForDaysFromNow(a.days)));
  flatbuffers::FlatBufferBuilder fbb(certificate.size() + 256);
  auto c = wire::CreatePlantCaInstallDirect(fbb, a.plant.c_str(), a.oem.c_str(), request_id.c_str(),
                                            certificate.c_str());
  ASSIGN_OR_RETURN(auto answer, Ask(a.kms, Finish(fbb, wire::AdminCommand::PlantCaInstall, c.Union())));
  ASSIGN_OR_RETURN(hsm::CertificateInfo info, hsm::InspectCertificate(certificate));
  Print(out, a.json, answer.json,
        "plant " + a.plant + " issuing CA for " + a.oem + " installed: " + info.subject.common_name + ", serial " +
            info.serial_hex + "; shipped in configuration version " +
            std::to_string(answer.json["config_version"].get<uint64_t>()));
  return Status::Ok();
}

Status PlantCaRevoke(const CaArgs& a, std::ostream& out) {
  flatbuffers::FlatBufferBuilder fbb;
  auto c = wire::CreatePlantCaRevokeDirect(fbb, a.plant.c_str(), a.oem.c_str(), a.reason.c_str());
  ASSIGN_OR_RETURN(auto answer, Ask(a.kms, Finish(fbb, wire::AdminCommand::PlantCaRevoke, c.Union())));
  Print(out, a.json, answer.json,
        "plant " + a.plant + " issuing CA for " + a.oem + " (" + answer.json["request_id"].get<std::string>() +
            ") revoked; it signs nothing more once the plant has the new configuration");
  return Status::Ok();
}

Status PlantCaBudget(const CaArgs& a, std::ostream& out) {
  // A million per plant and OEM is far above any line's output between two contacts.
  ASSIGN_OR_RETURN(uint32_t min, ParseNumber(a.budget_min, "--min", 1'000'000));
  ASSIGN_OR_RETURN(uint32_t target, ParseNumber(a.budget_target, "--target", 1'000'000));
  if (min > target) return InvalidArgumentError("--min must not be above --target");
  flatbuffers::FlatBufferBuilder fbb;
  auto c = wire::CreateCertificateBudgetSetDirect(fbb, a.plant.c_str(), a.oem.c_str(), min, target);
  ASSIGN_OR_RETURN(auto answer, Ask(a.kms, Finish(fbb, wire::AdminCommand::CertificateBudgetSet, c.Union())));
  const json& b = answer.json;
  Print(out, a.json, b,
        "plant " + a.plant + " issuing budget for " + a.oem + ": asks below " + std::to_string(min) + ", up to " +
            std::to_string(target) + " (" + std::to_string(b["granted"].get<uint64_t>()) + " granted, " +
            std::to_string(b["recorded"].get<uint64_t>()) + " recorded so far); shipped in configuration version " +
            std::to_string(b["config_version"].get<uint64_t>()));
  return Status::Ok();
}

}  // namespace

void RegisterCaCommands(CLI::App& root, CommandContext& context) {
  auto args = std::make_shared<CaArgs>();

  CLI::App* oem = root.get_subcommand("oem");
  auto* oem_ca = oem->add_subcommand("ca", "the OEM's CA certificate (and a stand-in OEM CA)");
  oem_ca->require_subcommand(1);
  auto* generate = oem_ca->add_subcommand("generate", "OEM stand-in: a P-256 root CA kept in a directory");
  generate->add_option("--oem", args->oem, "OEM id")->required();
  generate->add_option("--dir", args->dir, "directory for the CA's key and oem-ca.pem")->required();
  generate->add_option("--organization", args->organization, "O of the subject (default: the OEM id)");
  generate->add_option("--country", args->country, "C of the subject, two letters");
  generate->add_option("--days", args->days, "validity in days")->default_val(7300);
  generate->add_flag("--json", args->json, "print JSON");
  generate->callback([args, &context] { Runner{context}([&] { return OemCaGenerate(*args, *context.out); }); });

  auto* import = oem_ca->add_subcommand("import", "register the OEM CA's certificate at the KMS");
  import->add_option("--oem", args->oem, "OEM id")->required();
  import->add_option("--cert", args->cert, "CA certificate (PEM, self-signed)")->required();
  import->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*import);
  import->callback([args, &context] { Runner{context}([&] { return OemCaImport(*args, *context.out); }); });

  CLI::App* plant = root.get_subcommand("plant");
  auto* plant_ca = plant->add_subcommand("ca", "the plant's issuing CAs (ECU certificates)");
  plant_ca->require_subcommand(1);
  auto* issue = plant_ca->add_subcommand("issue", "issuing key in the plant HSM, certificate from the OEM CA");
  issue->add_option("--plant", args->plant, "plant id")->required();
  issue->add_option("--oem", args->oem, "OEM id")->required();
  issue->add_option("--oem-ca", args->dir, "the OEM CA directory (oem ca generate)")->required();
  issue->add_option("--days", args->days, "validity of the plant CA certificate in days")->default_val(1825);
  issue->add_option("--wait", args->wait_s, "seconds to wait for the plant's CSR")->default_val(60)->check(
      CLI::Range(0, 3600));
  issue->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*issue);
  issue->callback([args, &context] { Runner{context}([&] { return PlantCaIssue(*args, *context.out); }); });

  auto* revoke = plant_ca->add_subcommand("revoke", "stop a plant's issuing CA (ships a new configuration)");
  revoke->add_option("--plant", args->plant, "plant id")->required();
  revoke->add_option("--oem", args->oem, "OEM id")->required();
  revoke->add_option("--reason", args->reason, "why, for the audit log");
  revoke->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*revoke);
  revoke->callback([args, &context] { Runner{context}([&] { return PlantCaRevoke(*args, *context.out); }); });

  auto* budget = plant_ca->add_subcommand("budget", "how many ECU certificates a plant may issue ahead");
  budget->add_option("--plant", args->plant, "plant id")->required();
  budget->add_option("--oem", args->oem, "OEM id")->required();
  budget->add_option("--min", args->budget_min, "the plant asks for more below this")->required();
  budget->add_option("--target", args->budget_target,
                     "most certificates granted and not yet reported in records (0: no more grants)")
      ->required();
  budget->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*budget);
  budget->callback([args, &context] { Runner{context}([&] { return PlantCaBudget(*args, *context.out); }); });
}

}  // namespace keyline::keylinectl

// keylinectl commands that administer a running KMS (issue 6) and the OEM stand-in tooling:
//
//   oem add --name O --signing-key HEX                  oem keygen --oem O [--out FILE]
//   oem generate-batch --oem O --product P --count N --out batch.klb --oem-secrets secrets.jsonl
//   oem import batch.klb
//   product add --name P --oem O --slot SLOT:AUTH:COUNTER:FLAGS ... --transport-key REF
//               --min-stock N --target-stock N --reservation-timeout S [--flag-layout classic|plus]
//   plant add --plant ID --curve-key Z85 --wrap-key HEX --signing-key HEX
//   station add --plant ID --station ID --curve-key Z85
//   sync-policy set --plant ID --mode continuous|interval [--interval S]
//   verification request --oem O | status ID | export ID --out FILE | check FILE --oem-secrets F [--oem-ca PEM]
//   audit verify          status
//
// Exit status: 0 done, 1 refused (by the KMS, or the check failed), 2 usage (bad input).
// Commands that print data take --json. Key material: only the OEM stand-in commands touch
// it (keygen writes the OEM's signing seed, generate-batch its secrets file), by design.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "admin_support.h"
#include "certificate_lines.h"
#include "cli_values.h"
#include "command.h"
#include "keyline/broker/curve_keys.h"
#include "keyline/common/hex.h"
#include "keyline/hsm/key_custody.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"
#include "keyline/kms/batch_file.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/certificate_slot.h"
#include "keyline/wire/admin_generated.h"
#include "kms_client.h"

namespace keyline::keylinectl {
namespace {

using nlohmann::json;

// ---- OEM ---------------------------------------------------------------------------------

struct OemArgs {
  KmsConnection kms;
  std::string name, signing_key, oem, product, out, secrets, oem_key, import_key, batch_id, slots, file;
  uint64_t count = 0;
  bool json = false;
};

std::string DefaultOemKeyFile(const std::string& oem) { return oem + ".oemkey"; }

Status OemKeygen(const OemArgs& a, std::ostream& out) {
  const std::string path = a.out.empty() ? DefaultOemKeyFile(a.oem) : a.out;
  if (std::filesystem::exists(path)) return AlreadyExistsError(path + " exists; not overwriting a key file");
  ASSIGN_OR_RETURN(auto custody, hsm::CreateSoftwareCustody({}));
  ASSIGN_OR_RETURN(std::vector<uint8_t> seed, custody->Random(32));
  std::string seed_hex = ToHex(seed);
  std::fill(seed.begin(), seed.end(), 0);
  ASSIGN_OR_RETURN(hsm::KeyHandle key, custody->ImportKeyFromHex(hsm::KeyKind::kEd25519, seed_hex, "seed"));
  ASSIGN_OR_RETURN(hsm::PublicKey public_key, custody->GetPublicKey(key));
  mode_t old_mask = umask(077);
  std::ofstream file(path, std::ios::trunc);
  umask(old_mask);
  file << seed_hex << '\n';
  std::fill(seed_hex.begin(), seed_hex.end(), '0');
  file.close();
  if (!file) return UnavailableError(path + ": cannot write");
  Print(out, a.json, {{"oem", a.oem}, {"key_file", path}, {"signing_key", ToHex(public_key.bytes)}},
        "wrote " + path + " (keep it secret); register the public key with:\n  keylinectl oem add --name " + a.oem +
            " --signing-key " + ToHex(public_key.bytes));
  return Status::Ok();
}

Status OemGenerateBatch(const OemArgs& a, std::ostream& out) {
  if (a.count == 0 || a.count > 50'000'000) return OutOfRangeError("--count must be 1..50000000");
  const std::string key_file = a.oem_key.empty() ? DefaultOemKeyFile(a.oem) : a.oem_key;
  std::ifstream in(key_file);
  std::string seed_hex;
  if (!(in >> seed_hex)) {
    return InvalidArgumentError("--oem-key: cannot read " + key_file + " (create it with keylinectl oem keygen --oem " +
                                a.oem + ")");
  }
  kms::OemBatchSpec spec;
  spec.oem = a.oem;
  spec.product = a.product;
  spec.count = a.count;
  spec.batch_id = a.batch_id;
  std::string import_key = a.import_key;
  json product_slots;
  if (import_key.empty() || a.slots.empty()) {
    // Ask the KMS for what the OEM would have been told: its import key and the product's slots.
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreateKmsStatusQuery(fbb);
    auto answer = Ask(a.kms, Finish(fbb, wire::AdminCommand::KmsStatusQuery, c.Union()));
    if (!answer.ok()) {
      return Status(answer.status().code(), "--kms-import-key/--slots not given and the KMS cannot be asked: " +
                                                answer.status().message());
    }
    if (import_key.empty()) import_key = answer->json["kms"]["import_key"];
    for (const auto& p : answer->json["products"]) {
      if (p["product"] == a.product) product_slots = p["slots"];
    }
    if (a.slots.empty() && product_slots.is_null()) {
      return Remote(NotFoundError("product " + a.product + " is not registered at the KMS"));
    }
  }
  if (!a.slots.empty()) {
    std::stringstream list(a.slots);
    std::string item;
    while (std::getline(list, item, ',')) {
      ASSIGN_OR_RETURN(uint32_t slot, ParseNumber(item, "--slots", 15));
      spec.slots.push_back(static_cast<uint8_t>(slot));
    }
  } else {
    for (const auto& s : product_slots) spec.slots.push_back(s["slot"].get<uint8_t>());
  }
  ASSIGN_OR_RETURN(spec.kms_import_key.bytes, Key32(import_key, "--kms-import-key"));
  spec.kms_import_key.kind = hsm::KeyKind::kX25519;
  ASSIGN_OR_RETURN(auto custody, hsm::CreateSoftwareCustody({}));
  auto signing = custody->ImportKeyFromHex(hsm::KeyKind::kEd25519, seed_hex, "--oem-key");
  std::fill(seed_hex.begin(), seed_hex.end(), '0');
  if (!signing.ok()) return signing.status();
  ASSIGN_OR_RETURN(std::string batch_id, kms::WriteOemBatch(*custody, *signing, spec, a.out,
                                                            a.secrets.empty() ? std::nullopt
                                                                              : std::optional<std::filesystem::path>(a.secrets)));
  Print(out, a.json, {{"batch_id", batch_id}, {"key_sets", a.count}, {"file", a.out}, {"oem_secrets", a.secrets}},
        "wrote " + a.out + ": batch " + batch_id + ", " + std::to_string(a.count) + " key sets of " + a.product +
            (a.secrets.empty() ? "" : "; keys in " + a.secrets));
  return Status::Ok();
}

Status OemImport(const OemArgs& a, std::ostream& out, std::ostream& err) {
  std::ifstream in(a.file, std::ios::binary);
  if (!in) return InvalidArgumentError(a.file + ": cannot read");
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(a.file, ec);
  if (ec || size == 0) return InvalidArgumentError(a.file + ": empty or unreadable");
  ASSIGN_OR_RETURN(auto client, KmsClient::Connect(a.kms));
  const bool terminal = isatty(STDERR_FILENO) && !a.json;
  ASSIGN_OR_RETURN(auto custody, hsm::CreateSoftwareCustody({}));
  ASSIGN_OR_RETURN(std::vector<uint8_t> random, custody->Random(8));
  const std::string upload_id = ToHex(random);
  std::vector<uint8_t> piece(512 * 1024);
  uint64_t sent = 0;
  while (sent < size) {
    in.read(reinterpret_cast<char*>(piece.data()), static_cast<std::streamsize>(piece.size()));
    const size_t n = static_cast<size_t>(in.gcount());
    if (n == 0) return UnavailableError(a.file + ": read failed");
    flatbuffers::FlatBufferBuilder fbb(n + 256);
    auto c = wire::CreateBatchUpload(fbb, fbb.CreateString(upload_id), sent,
                                     schemas::CreateBytes(fbb, std::span<const uint8_t>(piece.data(), n)));
    auto answer = client->Call(Finish(fbb, wire::AdminCommand::BatchUpload, c.Union()));
    if (!answer.ok()) return Remote(answer.status());
    sent += n;
    if (terminal) err << "\ruploading " << (sent * 100 / size) << "% " << std::flush;
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreateBatchImport(fbb, fbb.CreateString(upload_id));
    auto answer = client->Call(Finish(fbb, wire::AdminCommand::BatchImport, c.Union()));
    if (!answer.ok()) return Remote(answer.status());
  }
  json state;
  while (true) {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreateBatchImportQuery(fbb, fbb.CreateString(upload_id));
    auto answer = client->Call(Finish(fbb, wire::AdminCommand::BatchImportQuery, c.Union()));
    if (!answer.ok()) return Remote(answer.status());
    state = answer->json;
    if (state["state"] == "imported" || state["state"] == "failed") break;
    if (terminal) {
      err << "\rimporting " << state["done"].get<uint64_t>() << "/" << state["total"].get<uint64_t>()
          << " key sets   " << std::flush;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (terminal) err << "\r" << std::string(40, ' ') << "\r" << std::flush;
  if (state["state"] == "failed") {
    return Status(StatusCode::kFailedPrecondition, a.file + " refused: " + state["error"].get<std::string>());
  }
  const bool again = state["already_imported"].get<bool>();
  Print(out, a.json, state,
        again ? "batch " + state["batch_id"].get<std::string>() + " was imported before: nothing added"
              : "imported batch " + state["batch_id"].get<std::string>() + ": " +
                    std::to_string(state["added"].get<uint64_t>()) + " key sets of " +
                    state["product"].get<std::string>() + " for " + state["oem"].get<std::string>());
  return Status::Ok();
}

void RegisterOem(CLI::App& root, CommandContext& context) {
  auto* oem = root.add_subcommand("oem", "OEMs: register, and stand-in OEM tooling (keys, batches)");
  oem->require_subcommand(1);
  auto args = std::make_shared<OemArgs>();

  auto* add = oem->add_subcommand("add", "register an OEM and its batch-signing Ed25519 public key");
  add->add_option("--name", args->name, "OEM id")->required();
  add->add_option("--signing-key", args->signing_key, "Ed25519 public key, 64 hex digits")->required();
  add->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*add);
  add->callback([args, &context] {
    Runner{context}([&]() -> Status {
      ASSIGN_OR_RETURN(auto key, Key32(args->signing_key, "--signing-key"));
      flatbuffers::FlatBufferBuilder fbb;
      auto c = wire::CreateOemAdd(fbb, fbb.CreateString(args->name), fbb.CreateVector(key.data(), 32));
      ASSIGN_OR_RETURN(auto answer, Ask(args->kms, Finish(fbb, wire::AdminCommand::OemAdd, c.Union())));
      Print(*context.out, args->json, answer.json, "OEM " + args->name + " registered");
      return Status::Ok();
    });
  });

  auto* keygen = oem->add_subcommand("keygen", "OEM stand-in: create an OEM batch-signing key file (0600)");
  keygen->add_option("--oem", args->oem, "OEM id")->required();
  keygen->add_option("--out", args->out, "key file (default <oem>.oemkey)");
  keygen->add_flag("--json", args->json, "print JSON");
  keygen->callback([args, &context] { Runner{context}([&] { return OemKeygen(*args, *context.out); }); });

  auto* generate = oem->add_subcommand("generate-batch", "OEM stand-in: write a signed, sealed key batch file");
  generate->add_option("--oem", args->oem, "OEM id")->required();
  generate->add_option("--product", args->product, "product")->required();
  generate->add_option("--count", args->count, "key sets")->required();
  generate->add_option("--out", args->out, "batch file to write (.klb)")->required();
  generate->add_option("--oem-secrets", args->secrets, "the OEM's own record of the keys (JSON Lines, keys in clear)");
  generate->add_option("--oem-key", args->oem_key, "OEM signing key file (default <oem>.oemkey)");
  generate->add_option("--kms-import-key", args->import_key, "KMS import key, 64 hex (default: ask the KMS)");
  generate->add_option("--slots", args->slots, "SHE slots, e.g. 1,4,5 (default: the product's, from the KMS)");
  generate->add_option("--batch-id", args->batch_id, "batch id (default <oem>-<16 random hex>)");
  generate->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*generate);
  generate->callback([args, &context] { Runner{context}([&] { return OemGenerateBatch(*args, *context.out); }); });

  auto* import = oem->add_subcommand("import", "import an OEM batch file into the KMS (idempotent)");
  import->add_option("file", args->file, "batch file (.klb)")->required();
  import->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*import);
  import->callback([args, &context] { Runner{context}([&] { return OemImport(*args, *context.out, *context.err); }); });
}

// ---- catalog ------------------------------------------------------------------------------

struct CatalogArgs {
  KmsConnection kms;
  std::string name, oem, transport_key, flag_layout = "classic", plant, curve_key, wrap_key, signing_key, station,
      mode, interval = "0";
  std::vector<std::string> slots;
  std::string min_stock, target_stock, reservation_timeout;
  // The product's ECU certificate slot (docs/certificates.md); none when certificate_slot is empty.
  std::string certificate_slot, certificate_organization, certificate_unit,
      certificate_cn = "{product} {uid}", certificate_days = "5475";
  std::vector<std::string> certificate_key_usage, certificate_eku;
  bool json = false;
};

// The certificate slot the options describe, or none.
StatusOr<std::optional<schemas::CertificateSlotSpec>> CertificateSlotOf(const CatalogArgs& args) {
  bool other = !args.certificate_organization.empty() || !args.certificate_unit.empty() ||
               !args.certificate_key_usage.empty() || !args.certificate_eku.empty();
  if (args.certificate_slot.empty()) {
    if (other) return InvalidArgumentError("--certificate-* options need --certificate-slot NAME");
    return std::optional<schemas::CertificateSlotSpec>();
  }
  RETURN_IF_ERROR(schemas::CheckCertificateSlotName(args.certificate_slot));
  schemas::CertificateSlotSpec spec;
  spec.name = args.certificate_slot;
  spec.organization = args.certificate_organization;
  spec.organizational_unit = args.certificate_unit;
  spec.common_name = args.certificate_cn;
  ASSIGN_OR_RETURN(spec.validity_days, ParseNumber(args.certificate_days, "--certificate-days",
                                                   schemas::kMaxCertificateValidityDays));
  if (spec.validity_days == 0) return OutOfRangeError("--certificate-days must be above 0");
  spec.key_usage = args.certificate_key_usage;
  spec.extended_key_usage = args.certificate_eku;
  RETURN_IF_ERROR(hsm::CheckEndEntityUsages(spec.key_usage, spec.extended_key_usage));
  return std::optional<schemas::CertificateSlotSpec>(std::move(spec));
}

void RegisterCatalog(CLI::App& root, CommandContext& context) {
  auto args = std::make_shared<CatalogArgs>();
  auto* product = root.add_subcommand("product", "products: what an ECU receives");
  product->require_subcommand(1);
  auto* padd = product->add_subcommand("add", "register a product (queues a ConfigUpdate to every plant)");
  padd->add_option("--name", args->name, "product id")->required();
  padd->add_option("--oem", args->oem, "OEM the keys belong to")->required();
  padd->add_option("--slot", args->slots, "SLOT:AUTH_SLOT:COUNTER:FLAGS, in load order (repeat)")->required();
  padd->add_option("--flag-layout", args->flag_layout, "classic (5 flags) or plus (6 flags)");
  padd->add_option("--transport-key", args->transport_key, "transport key reference in the plant HSM")->required();
  padd->add_option("--min-stock", args->min_stock, "plants ask for stock below this")->required();
  padd->add_option("--target-stock", args->target_stock, "plants fill up to this")->required();
  padd->add_option("--reservation-timeout", args->reservation_timeout, "seconds before a reservation is burned")->required();
  padd->add_option("--certificate-slot", args->certificate_slot,
                   "give each ECU a P-256 key pair and a certificate in this slot (docs/certificates.md)");
  padd->add_option("--certificate-organization", args->certificate_organization, "certificate subject O");
  padd->add_option("--certificate-unit", args->certificate_unit, "certificate subject OU");
  padd->add_option("--certificate-cn", args->certificate_cn,
                   "certificate subject CN; {uid} {product} {oem} are replaced (default \"{product} {uid}\")");
  padd->add_option("--certificate-days", args->certificate_days, "certificate lifetime in days (default 5475)");
  padd->add_option("--certificate-key-usage", args->certificate_key_usage,
                   "digitalSignature, keyAgreement or nonRepudiation (repeat; default digitalSignature)");
  padd->add_option("--certificate-eku", args->certificate_eku, "clientAuth or serverAuth (repeat; default none)");
  padd->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*padd);
  padd->callback([args, &context] {
    Runner{context}([&]() -> Status {
      if (args->flag_layout != "classic" && args->flag_layout != "plus") {
        return InvalidArgumentError("--flag-layout must be classic or plus");
      }
      const uint32_t max_flags = args->flag_layout == "plus" ? 0x3F : 0x1F;
      flatbuffers::FlatBufferBuilder fbb;
      std::vector<flatbuffers::Offset<wire::SlotLayout>> slots;
      for (const std::string& text : args->slots) {
        std::vector<std::string> parts;
        std::stringstream ss(text);
        std::string part;
        while (std::getline(ss, part, ':')) parts.push_back(part);
        if (parts.size() != 4) return InvalidArgumentError("--slot '" + text + "': expected SLOT:AUTH_SLOT:COUNTER:FLAGS");
        ASSIGN_OR_RETURN(uint32_t slot, ParseNumber(parts[0], "--slot slot", 14));
        ASSIGN_OR_RETURN(uint32_t auth, ParseNumber(parts[1], "--slot auth slot", 15));
        ASSIGN_OR_RETURN(uint32_t counter, ParseNumber(parts[2], "--slot counter", 0x0FFFFFFF));
        ASSIGN_OR_RETURN(uint32_t flags, ParseNumber(parts[3], "--slot flags", max_flags));
        if (slot == 0) return OutOfRangeError("--slot '" + text + "': slot 0 (SECRET_KEY) is not loadable");
        slots.push_back(wire::CreateSlotLayout(fbb, static_cast<uint8_t>(slot), static_cast<uint8_t>(auth), counter,
                                               static_cast<uint8_t>(flags)));
      }
      ASSIGN_OR_RETURN(uint32_t min_stock, ParseNumber(args->min_stock, "--min-stock", 10'000'000));
      ASSIGN_OR_RETURN(uint32_t target, ParseNumber(args->target_stock, "--target-stock", 10'000'000));
      ASSIGN_OR_RETURN(uint32_t timeout, ParseNumber(args->reservation_timeout, "--reservation-timeout", 86400 * 7));
      if (target == 0 || min_stock > target) {
        return InvalidArgumentError("--target-stock must be above 0 and at least --min-stock");
      }
      if (timeout == 0) return OutOfRangeError("--reservation-timeout must be above 0");
      ASSIGN_OR_RETURN(std::optional<schemas::CertificateSlotSpec> certificate, CertificateSlotOf(*args));
      auto certificate_slot = certificate ? schemas::CreateCertificateSlot(fbb, *certificate) : 0;
      auto p = wire::CreateProduct(fbb, fbb.CreateString(args->name), fbb.CreateString(args->oem),
                                   fbb.CreateVector(slots),
                                   args->flag_layout == "plus" ? wire::SheFlagLayout::SHE_PLUS
                                                               : wire::SheFlagLayout::SHE_CLASSIC,
                                   fbb.CreateString(args->transport_key), min_stock, target, timeout,
                                   certificate_slot);
      auto c = wire::CreateProductAdd(fbb, p);
      ASSIGN_OR_RETURN(auto answer, Ask(args->kms, Finish(fbb, wire::AdminCommand::ProductAdd, c.Union())));
      Print(*context.out, args->json, answer.json, "product " + args->name + " registered");
      return Status::Ok();
    });
  });

  auto* plant = root.add_subcommand("plant", "plants: a PKS and its keys");
  plant->require_subcommand(1);
  auto* pladd = plant->add_subcommand("add", "register a plant (keys from keyline-pks keys show)");
  pladd->add_option("--plant", args->plant, "plant id")->required();
  pladd->add_option("--curve-key", args->curve_key, "the PKS's Curve public key, Z85")->required();
  pladd->add_option("--wrap-key", args->wrap_key, "the plant HSM's pks-transfer X25519 public key, 64 hex")->required();
  pladd->add_option("--signing-key", args->signing_key, "the plant's pks-signing Ed25519 public key, 64 hex")->required();
  pladd->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*pladd);
  pladd->callback([args, &context] {
    Runner{context}([&]() -> Status {
      ASSIGN_OR_RETURN(auto curve, broker::CurvePublicKeyFromZ85(args->curve_key, "--curve-key"));
      ASSIGN_OR_RETURN(auto wrap, Key32(args->wrap_key, "--wrap-key"));
      ASSIGN_OR_RETURN(auto signing, Key32(args->signing_key, "--signing-key"));
      flatbuffers::FlatBufferBuilder fbb;
      auto c = wire::CreatePlantAdd(fbb, fbb.CreateString(args->plant), fbb.CreateVector(curve.data(), 32),
                                    fbb.CreateVector(wrap.data(), 32), fbb.CreateVector(signing.data(), 32));
      ASSIGN_OR_RETURN(auto answer, Ask(args->kms, Finish(fbb, wire::AdminCommand::PlantAdd, c.Union())));
      Print(*context.out, args->json, answer.json, "plant " + args->plant + " registered");
      return Status::Ok();
    });
  });

  auto* station = root.add_subcommand("station", "EOL stations allowed at a plant");
  station->require_subcommand(1);
  auto* sadd = station->add_subcommand("add", "allow a station (queues a ConfigUpdate to its plant)");
  sadd->add_option("--plant", args->plant, "plant id")->required();
  sadd->add_option("--station", args->station, "station id")->required();
  sadd->add_option("--curve-key", args->curve_key, "the station's Curve public key, Z85")->required();
  sadd->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*sadd);
  sadd->callback([args, &context] {
    Runner{context}([&]() -> Status {
      ASSIGN_OR_RETURN(auto curve, broker::CurvePublicKeyFromZ85(args->curve_key, "--curve-key"));
      flatbuffers::FlatBufferBuilder fbb;
      auto st = wire::CreateStation(fbb, fbb.CreateString(args->station), fbb.CreateVector(curve.data(), 32));
      auto c = wire::CreateStationAdd(fbb, fbb.CreateString(args->plant), st);
      ASSIGN_OR_RETURN(auto answer, Ask(args->kms, Finish(fbb, wire::AdminCommand::StationAdd, c.Union())));
      Print(*context.out, args->json, answer.json, "station " + args->station + " allowed at " + args->plant);
      return Status::Ok();
    });
  });

  auto* sync = root.add_subcommand("sync-policy", "when a plant contacts the KMS");
  sync->require_subcommand(1);
  auto* sset = sync->add_subcommand("set", "set a plant's contact schedule (queues a ConfigUpdate)");
  sset->add_option("--plant", args->plant, "plant id")->required();
  sset->add_option("--mode", args->mode, "continuous or interval")->required();
  sset->add_option("--interval", args->interval, "seconds between contacts (interval mode)");
  sset->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*sset);
  sset->callback([args, &context] {
    Runner{context}([&]() -> Status {
      if (args->mode != "continuous" && args->mode != "interval") {
        return InvalidArgumentError("--mode must be continuous or interval");
      }
      ASSIGN_OR_RETURN(uint32_t interval, ParseNumber(args->interval, "--interval", 86400));
      if (args->mode == "interval" && interval == 0) return OutOfRangeError("--interval must be 1..86400 in interval mode");
      flatbuffers::FlatBufferBuilder fbb;
      auto policy = wire::CreateSyncPolicy(
          fbb, args->mode == "interval" ? wire::SyncMode::INTERVAL : wire::SyncMode::CONTINUOUS, interval);
      auto c = wire::CreateSyncPolicySet(fbb, fbb.CreateString(args->plant), policy);
      ASSIGN_OR_RETURN(auto answer, Ask(args->kms, Finish(fbb, wire::AdminCommand::SyncPolicySet, c.Union())));
      Print(*context.out, args->json, answer.json, "sync policy of " + args->plant + " set to " + args->mode);
      return Status::Ok();
    });
  });
}

// ---- verification, audit, status ------------------------------------------------------------

struct VerifyArgs {
  KmsConnection kms;
  std::string oem, id, out, file, secrets, kms_signing_key, oem_ca;
  bool json = false;
};

Status Fetch(const VerifyArgs& a, wire::VerificationPart part, const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(auto client, KmsClient::Connect(a.kms));
  std::filesystem::path temp = path;
  temp += ".tmp";
  std::ofstream out(temp, std::ios::binary | std::ios::trunc);
  if (!out) return InvalidArgumentError(path.string() + ": cannot write");
  uint64_t offset = 0;
  while (true) {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreateVerificationFetch(fbb, fbb.CreateString(a.id), part, offset, 512 * 1024);
    auto answer = client->Call(Finish(fbb, wire::AdminCommand::VerificationFetch, c.Union()), 300000);
    if (!answer.ok()) return Remote(answer.status());
    out.write(reinterpret_cast<const char*>(answer->data.data()), static_cast<std::streamsize>(answer->data.size()));
    offset += answer->data.size();
    if (offset >= answer->json["size"].get<uint64_t>() || answer->data.empty()) break;
  }
  out.close();
  if (!out) return UnavailableError(path.string() + ": write failed");
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) return UnavailableError(path.string() + ": " + ec.message());
  return Status::Ok();
}

Status Check(const VerifyArgs& a, std::ostream& out) {
  // The KMS's signing key: given, from the environment, or asked from the KMS.
  std::string key_hex = a.kms_signing_key;
  if (key_hex.empty()) {
    const char* env = std::getenv("KEYLINE_KMS_SIGNING_KEY");
    if (env != nullptr) key_hex = env;
  }
  if (key_hex.empty()) {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreateKmsStatusQuery(fbb);
    auto answer = Ask(a.kms, Finish(fbb, wire::AdminCommand::KmsStatusQuery, c.Union()));
    if (!answer.ok()) {
      return InvalidArgumentError("--kms-signing-key (or KEYLINE_KMS_SIGNING_KEY) is needed to check the file: " +
                                  answer.status().message());
    }
    key_hex = answer->json["kms"]["signing_key"];
  }
  ASSIGN_OR_RETURN(auto key_bytes, Key32(key_hex, "--kms-signing-key"));
  std::ifstream file_in(a.file, std::ios::binary);
  if (!file_in) return InvalidArgumentError(a.file + ": cannot read");
  std::string content((std::istreambuf_iterator<char>(file_in)), {});
  std::ifstream sig_in(a.file + ".sig");
  std::string sig_hex;
  if (!(sig_in >> sig_hex)) return InvalidArgumentError(a.file + ".sig: cannot read the signature beside the file");
  ASSIGN_OR_RETURN(auto sig_bytes, ParseHex(sig_hex, a.file + ".sig", 64));
  hsm::Signature signature{};
  std::copy(sig_bytes.begin(), sig_bytes.end(), signature.begin());
  hsm::PublicKey kms_key{hsm::KeyKind::kEd25519, key_bytes};
  const bool signature_ok =
      hsm::VerifySignature(kms_key, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(content.data()), content.size()),
                           signature)
          .ok();

  // The OEM's keys, by key set and slot, imported into a throw-away custody as they are needed.
  std::ifstream secrets_in(a.secrets);
  if (!secrets_in) return InvalidArgumentError("--oem-secrets: cannot read " + a.secrets);
  std::map<std::string, std::string> secret_lines;  // key_set_id -> its JSON line
  std::string line;
  while (std::getline(secrets_in, line)) {
    if (line.empty()) continue;
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("key_set_id")) return InvalidArgumentError("--oem-secrets: a line is not a key set record");
    secret_lines[j["key_set_id"].get<std::string>()] = line;
  }
  // The OEM CA certificate the ECU certificates must chain to (only needed when there are any).
  std::string oem_ca;
  if (!a.oem_ca.empty()) {
    std::ifstream ca_in(a.oem_ca);
    if (!ca_in) return InvalidArgumentError("--oem-ca: cannot read " + a.oem_ca);
    oem_ca.assign((std::istreambuf_iterator<char>(ca_in)), {});
    RETURN_IF_ERROR(hsm::InspectCertificate(oem_ca).status().WithContext("--oem-ca " + a.oem_ca));
  }
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  ASSIGN_OR_RETURN(auto custody, hsm::CreateSoftwareCustody({}));
  uint64_t lines = 0, proven = 0, wrong = 0, unknown = 0, malformed = 0;
  uint64_t certificates = 0, certificates_valid = 0, certificate_problems = 0;
  std::set<std::string> ecus;
  std::vector<std::string> problems;
  std::stringstream file_lines(content);
  while (std::getline(file_lines, line)) {
    ++lines;
    auto j = json::parse(line, nullptr, false);
    auto note = [&](std::string text) {
      if (problems.size() < 20) problems.push_back("line " + std::to_string(lines) + ": " + text);
    };
    if (!j.is_discarded() && j.is_object() && IsCertificateLine(j)) {
      ++certificates;
      const std::string problem = oem_ca.empty() ? "an ECU certificate line: --oem-ca FILE is needed to check it"
                                                 : CheckCertificateLine(j, oem_ca, now);
      if (problem.empty()) {
        ++certificates_valid;
      } else {
        ++certificate_problems;
        note(problem);
      }
      continue;
    }
    if (j.is_discarded() || !j.contains("key_set_id") || !j.contains("m4") || !j.contains("ecu_uid")) {
      ++malformed;
      note("not a verification line");
      continue;
    }
    auto secret = secret_lines.find(j["key_set_id"].get<std::string>());
    if (secret == secret_lines.end()) {
      ++unknown;
      note("key set " + j["key_set_id"].get<std::string>() + " is not in the OEM's secrets");
      continue;
    }
    json record = json::parse(secret->second);
    std::string slot_key;
    for (const auto& s : record["slots"]) {
      if (s["slot"] == j["slot"]) slot_key = s["key"].get<std::string>();
    }
    if (slot_key.empty()) {
      ++unknown;
      note("slot " + std::to_string(j["slot"].get<int>()) + " is not in the OEM's record of the key set");
      continue;
    }
    auto uid = ParseHex(j["ecu_uid"].get<std::string>(), "ecu_uid", 15);
    auto m4 = ParseHex(j["m4"].get<std::string>(), "m4", 32);
    auto m5 = ParseHex(j["m5"].get<std::string>(), "m5", 16);
    if (!uid.ok() || !m4.ok() || !m5.ok()) {
      ++malformed;
      note("ecu_uid, m4 or m5 has the wrong length");
      continue;
    }
    auto handle = custody->ImportKeyFromHex(hsm::KeyKind::kAes128, slot_key, "OEM key");
    if (!handle.ok()) {
      ++malformed;
      note("the OEM's key for this slot is not 32 hex digits");
      continue;
    }
    hsm::ScopedKey key(custody.get(), *handle);
    hsm::SheProofFields fields;
    std::copy(uid->begin(), uid->end(), fields.uid.begin());
    fields.slot = j["slot"].get<uint8_t>();
    fields.auth_slot = j["auth_slot"].get<uint8_t>();
    fields.counter = j["counter"].get<uint32_t>();
    auto expected = custody->ComputeSheProof(key.get(), fields);
    if (!expected.ok()) {
      ++malformed;
      note(expected.status().message());
      continue;
    }
    const bool match = std::equal(m4->begin(), m4->end(), expected->m4.begin()) &&
                       std::equal(m5->begin(), m5->end(), expected->m5.begin());
    if (match) {
      ++proven;
      ecus.insert(j["ecu_uid"].get<std::string>());
    } else {
      ++wrong;
      note("M4/M5 do not match the OEM's key for key set " + j["key_set_id"].get<std::string>() + " slot " +
           std::to_string(j["slot"].get<int>()));
    }
  }
  const bool ok = signature_ok && wrong == 0 && unknown == 0 && malformed == 0 && certificate_problems == 0;
  json summary = {{"file", a.file},          {"signature_valid", signature_ok}, {"lines", lines},
                  {"proven", proven},        {"ecus", ecus.size()},             {"mismatched", wrong},
                  {"unknown_key_sets", unknown}, {"malformed", malformed},      {"ok", ok},
                  {"certificates", certificates}, {"certificates_valid", certificates_valid},
                  {"certificate_problems", certificate_problems}, {"problems", problems}};
  std::string text = std::string("signature: ") + (signature_ok ? "valid (KMS key)" : "INVALID") + "\n" +
                     std::to_string(lines) + " lines, " + std::to_string(ecus.size()) + " ECUs: " +
                     std::to_string(proven) + " proofs match the OEM's keys, " + std::to_string(wrong) +
                     " do not, " + std::to_string(unknown) + " unknown, " + std::to_string(malformed) + " malformed";
  if (certificates > 0) {
    text += "\n" + std::to_string(certificates) + " ECU certificates: " + std::to_string(certificates_valid) +
            " chain to the OEM CA, name their ECU, are valid now and carry the ECU's confirmation, " +
            std::to_string(certificate_problems) + " do not";
  }
  for (const auto& p : problems) text += "\n  " + p;
  Print(out, a.json, summary, text);
  return ok ? Status::Ok() : Status(StatusCode::kFailedPrecondition, "verification file check failed");
}

void RegisterVerification(CLI::App& root, CommandContext& context) {
  auto args = std::make_shared<VerifyArgs>();
  auto* v = root.add_subcommand("verification", "verification files for OEMs");
  v->require_subcommand(1);
  auto* request = v->add_subcommand("request", "ask every plant concerned for its watermark");
  request->add_option("--oem", args->oem, "OEM id")->required();
  request->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*request);
  request->callback([args, &context] {
    Runner{context}([&]() -> Status {
      flatbuffers::FlatBufferBuilder fbb;
      auto c = wire::CreateVerificationOpen(fbb, fbb.CreateString(args->oem));
      ASSIGN_OR_RETURN(auto answer, Ask(args->kms, Finish(fbb, wire::AdminCommand::VerificationOpen, c.Union())));
      Print(*context.out, args->json, answer.json,
            "verification " + answer.json["verification_id"].get<std::string>() + " for " + args->oem +
                "; waiting for: " + Join(answer.json["pending"]));
      return Status::Ok();
    });
  });
  auto* status = v->add_subcommand("status", "which plants a verification still waits for");
  status->add_option("id", args->id, "verification id")->required();
  status->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*status);
  status->callback([args, &context] {
    Runner{context}([&]() -> Status {
      flatbuffers::FlatBufferBuilder fbb;
      auto c = wire::CreateVerificationStatusQuery(fbb, fbb.CreateString(args->id));
      ASSIGN_OR_RETURN(auto answer, Ask(args->kms, Finish(fbb, wire::AdminCommand::VerificationStatusQuery, c.Union())));
      Print(*context.out, args->json, answer.json,
            answer.json["complete"].get<bool>() ? "verification " + args->id + " is complete: ready to export"
                                                : "verification " + args->id + " waits for: " + Join(answer.json["pending"]));
      return Status::Ok();
    });
  });
  auto* exp = v->add_subcommand("export", "write the verification file and FILE.sig");
  exp->add_option("id", args->id, "verification id")->required();
  exp->add_option("--out", args->out, "file to write")->required();
  exp->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*exp);
  exp->callback([args, &context] {
    Runner{context}([&]() -> Status {
      RETURN_IF_ERROR(Fetch(*args, wire::VerificationPart::FILE, args->out));
      RETURN_IF_ERROR(Fetch(*args, wire::VerificationPart::SIGNATURE, args->out + ".sig"));
      std::error_code ec;
      const auto size = std::filesystem::file_size(args->out, ec);
      Print(*context.out, args->json, {{"verification_id", args->id}, {"file", args->out}, {"bytes", size}},
            "wrote " + args->out + " (" + std::to_string(size) + " bytes) and " + args->out + ".sig");
      return Status::Ok();
    });
  });
  auto* check = v->add_subcommand(
      "check", "what the OEM runs: check the signature, recompute every M4/M5, check every ECU certificate");
  check->add_option("file", args->file, "verification file (FILE.sig beside it)")->required();
  check->add_option("--oem-secrets", args->secrets, "the OEM's secrets.jsonl")->required();
  check->add_option("--oem-ca", args->oem_ca,
                    "the OEM CA certificate (PEM) the ECU certificates must chain to (oem-ca.pem)");
  check->add_option("--kms-signing-key", args->kms_signing_key,
                    "the KMS's Ed25519 key, 64 hex (env KEYLINE_KMS_SIGNING_KEY; default: ask the KMS)");
  check->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*check);
  check->callback([args, &context] { Runner{context}([&] { return Check(*args, *context.out); }); });
}

void RegisterAuditAndStatus(CLI::App& root, CommandContext& context) {
  auto args = std::make_shared<VerifyArgs>();
  auto* audit = root.add_subcommand("audit", "the KMS's hash-chained audit log");
  audit->require_subcommand(1);
  auto* verify = audit->add_subcommand("verify", "recompute the chain; exit 1 if an entry was changed, removed or reordered");
  verify->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*verify);
  verify->callback([args, &context] {
    Runner{context}([&]() -> Status {
      flatbuffers::FlatBufferBuilder fbb;
      auto c = wire::CreateAuditVerifyQuery(fbb);
      ASSIGN_OR_RETURN(auto answer, Ask(args->kms, Finish(fbb, wire::AdminCommand::AuditVerifyQuery, c.Union())));
      const bool intact = answer.json["intact"].get<bool>();
      std::string text = std::to_string(answer.json["entries"].get<uint64_t>()) + " entries, chain " +
                         (intact ? "intact" : "BROKEN");
      for (const auto& p : answer.json["problems"]) text += "\n  " + p.get<std::string>();
      Print(*context.out, args->json, answer.json, text);
      if (!intact) context.exit_code = kExitFailed;
      return Status::Ok();
    });
  });
  auto* status = root.add_subcommand("status", "plants, stock, records, pending requests and alerts");
  status->add_flag("--json", args->json, "print JSON");
  args->kms.AddOptions(*status);
  status->callback([args, &context] {
    Runner{context}([&]() -> Status {
      flatbuffers::FlatBufferBuilder fbb;
      auto c = wire::CreateKmsStatusQuery(fbb);
      ASSIGN_OR_RETURN(auto answer, Ask(args->kms, Finish(fbb, wire::AdminCommand::KmsStatusQuery, c.Union())));
      const json& s = answer.json;
      std::ostringstream text;
      text << "plants:\n";
      for (const auto& p : s["plants"]) {
        text << "  " << p["plant"].get<std::string>() << ": last contact "
             << (p["last_contact"].is_null() ? std::string("never") : p["last_contact"].get<std::string>())
             << ", config " << p["config_version_acknowledged"] << "/" << p["config_version_queued"]
             << " acknowledged, records " << p["records_received"] << " (" << p["records_refused"] << " refused), "
             << p["messages_waiting"] << " messages waiting\n";
        for (const auto& st : p["stock"]) {
          text << "    " << st["product"].get<std::string>() << ": " << st["in_stock"] << " in stock (min "
               << st["min_stock"] << ", target " << st["target_stock"] << "), " << st["reserved"] << " reserved\n";
        }
        for (const auto& ca : p["issuing_cas"]) {
          text << "    issuing CA for " << ca["oem"].get<std::string>() << " #" << ca["generation"] << ": "
               << ca["state"].get<std::string>() << "\n";
        }
        for (const auto& b : p.value("certificate_budgets", json::array())) {
          text << "    issuing budget for " << b["oem"].get<std::string>() << ": granted " << b.value("granted", uint64_t{0})
               << ", recorded " << b.value("recorded", uint64_t{0}) << " (min " << b.value("min", uint64_t{0}) << ", target "
               << b.value("target", uint64_t{0}) << ")";
          if (b.contains("at_plant")) {
            const json& at = b["at_plant"];
            text << "; at the plant " << at["available"] << " available, " << at["issued"] << " issued, "
                 << at["pending"] << " reserved";
          }
          text << "\n";
        }
      }
      text << "products:\n";
      for (const auto& p : s["products"]) {
        text << "  " << p["product"].get<std::string>() << " (" << p["oem"].get<std::string>() << "): imported "
             << p["imported"] << ", KMS stock " << p["kms_stock"] << ", at plants " << p["shipped_in_plants"]
             << ", injected " << p["injected"] << ", burned " << p["burned"] << "\n";
      }
      text << "verifications pending: " << s["verifications_pending"].size() << "\n";
      text << "imports running: " << s["imports_running"].size() << "\n";
      text << "alerts:";
      if (s["alerts"].empty()) text << " none";
      for (const auto& alert : s["alerts"]) text << "\n  " << alert.get<std::string>();
      Print(*context.out, args->json, s, text.str());
      return Status::Ok();
    });
  });
}

}  // namespace

void RegisterAdminCommands(CLI::App& root, CommandContext& context) {
  RegisterOem(root, context);
  RegisterCatalog(root, context);
  RegisterVerification(root, context);
  RegisterAuditAndStatus(root, context);
}

}  // namespace keyline::keylinectl

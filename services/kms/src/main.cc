// keyline-kms: thin main over keyline::kms.
//
//   keyline-kms --config kms.toml                 run until SIGINT/SIGTERM
//   keyline-kms keys --config kms.toml [--json]   public keys others need (OEMs, plants, admins)
//   keyline-kms status --config kms.toml          status of a stopped KMS (a running one: keylinectl status)
//   keyline-kms admin-key --out FILE              a new admin Curve key pair (0600) for keylinectl
#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "keyline/broker/curve_keys.h"
#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/kms/config.h"
#include "keyline/kms/kms.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

int Fail(const keyline::Status& status, int code = 1) {
  std::cerr << "keyline-kms: " << status.message() << '\n';
  return code;
}

keyline::StatusOr<keyline::kms::KmsConfig> Load(const std::string& path) {
  ASSIGN_OR_RETURN(auto config, keyline::kms::LoadKmsConfig(path));
  RETURN_IF_ERROR(keyline::InitLogging({"kms", config.log_level, config.log_file}));
  return config;
}

int Run(const std::string& path) {
  auto config = Load(path);
  if (!config.ok()) return Fail(config.status(), 2);
  auto custody = keyline::kms::OpenKmsCustody(*config);
  if (!custody.ok()) return Fail(custody.status());
  auto kms = keyline::kms::Kms::Open(config->kms, std::move(*custody));
  if (!kms.ok()) return Fail(kms.status());
  if (auto s = (*kms)->Serve(); !s.ok()) return Fail(s);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  // One line on stdout that scripts and tests wait for.
  std::cout << "keyline-kms ready link=" << (*kms)->link_endpoint() << " admin=" << (*kms)->admin_endpoint()
            << std::endl;
  while (!g_stop) pause();
  spdlog::info("kms: stopping");
  return 0;
}

int Keys(const std::string& path, bool json) {
  auto config = Load(path);
  if (!config.ok()) return Fail(config.status(), 2);
  auto custody = keyline::kms::OpenKmsCustody(*config);
  if (!custody.ok()) return Fail(custody.status());
  auto import_key = (*custody)->GetOrCreateNamedKey("kms-import", keyline::hsm::KeyKind::kX25519);
  auto signing_key = (*custody)->GetOrCreateNamedKey("kms-signing", keyline::hsm::KeyKind::kEd25519);
  if (!import_key.ok()) return Fail(import_key.status());
  if (!signing_key.ok()) return Fail(signing_key.status());
  auto import_public = (*custody)->GetPublicKey(*import_key);
  auto signing_public = (*custody)->GetPublicKey(*signing_key);
  if (!import_public.ok() || !signing_public.ok()) return Fail(keyline::InternalError("public keys unavailable"));
  std::filesystem::path curve_file = config->kms.curve_key_file.empty() ? config->kms.data_dir / "kms.curve"
                                                                        : config->kms.curve_key_file;
  keyline::StatusOr<keyline::broker::CurveKeyPair> curve = keyline::broker::CurveKeyPair::Load(curve_file);
  if (!curve.ok() && !std::filesystem::exists(curve_file)) {
    curve = keyline::broker::CurveKeyPair::Generate();
    std::error_code ec;
    std::filesystem::create_directories(curve_file.parent_path(), ec);
    if (curve.ok()) {
      if (auto s = curve->Save(curve_file); !s.ok()) return Fail(s);
    }
  }
  if (!curve.ok()) return Fail(curve.status());
  const std::string import_hex = keyline::ToHex(import_public->bytes);
  const std::string signing_hex = keyline::ToHex(signing_public->bytes);
  const std::string curve_z85 = keyline::broker::CurvePublicKeyToZ85(curve->public_key());
  if (json) {
    std::cout << nlohmann::json{{"import_key", import_hex}, {"signing_key", signing_hex}, {"curve_key", curve_z85}}.dump()
              << '\n';
  } else {
    std::cout << "import key (X25519, OEM batches are sealed to it):  " << import_hex << '\n'
              << "signing key (Ed25519, verification files):          " << signing_hex << '\n'
              << "Curve key (Z85, plants and keylinectl dial it):     " << curve_z85 << '\n';
  }
  return 0;
}

int StatusCommand(const std::string& path) {
  auto config = Load(path);
  if (!config.ok()) return Fail(config.status(), 2);
  auto custody = keyline::kms::OpenKmsCustody(*config);
  if (!custody.ok()) return Fail(custody.status());
  auto kms = keyline::kms::Kms::Open(config->kms, std::move(*custody));
  if (!kms.ok()) {
    return Fail(keyline::Status(kms.status().code(),
                                kms.status().message() + " (if the KMS is running, use keylinectl status)"));
  }
  auto status = (*kms)->StatusJson();
  if (!status.ok()) return Fail(status.status());
  std::cout << nlohmann::json::parse(*status).dump(2) << '\n';
  return 0;
}

int AdminKey(const std::string& out) {
  auto keys = keyline::broker::CurveKeyPair::Generate();
  if (!keys.ok()) return Fail(keys.status());
  if (std::filesystem::exists(out)) return Fail(keyline::AlreadyExistsError(out + " exists; not overwriting a key file"));
  if (auto s = keys->Save(out); !s.ok()) return Fail(s);
  std::cout << keyline::broker::CurvePublicKeyToZ85(keys->public_key()) << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyline-kms: the central key management system"};
  std::string config;
  app.add_option("--config", config, "kms.toml");
  bool json = false;
  auto* keys = app.add_subcommand("keys", "print the KMS's public keys (import, signing, Curve)");
  keys->add_option("--config", config, "kms.toml")->required();
  keys->add_flag("--json", json, "print JSON");
  auto* status = app.add_subcommand("status", "status of a stopped KMS's data dir");
  status->add_option("--config", config, "kms.toml")->required();
  std::string out;
  auto* admin_key = app.add_subcommand("admin-key", "write a new admin Curve key pair; prints its public key");
  admin_key->add_option("--out", out, "key file to write (0600)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "keyline-kms: " << e.what() << '\n';
    return 2;
  }
  (void)keyline::InitLogging({"kms", "info", std::nullopt});
  if (*keys) return Keys(config, json);
  if (*status) return StatusCommand(config);
  if (*admin_key) return AdminKey(out);
  if (config.empty()) {
    std::cerr << "keyline-kms: --config is required (see --help)\n";
    return 2;
  }
  return Run(config);
}

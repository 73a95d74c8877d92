// keyline-kms: thin main over keyline::kms.
//
//   keyline-kms --config kms.toml                 run until SIGINT/SIGTERM
//   keyline-kms keys --config kms.toml [--json]   public keys others need (OEMs, plants, admins)
//   keyline-kms status --config kms.toml [--running] [--json]
//                                                 a stopped KMS: its status page; a running one:
//                                                 its plants' links, read without disturbing it
//   keyline-kms check-config --config kms.toml    read and check the file only
//   keyline-kms admin-key --out FILE              a new admin Curve key pair (0600) for keylinectl
//
// Exit status: 0 ok, 1 the command failed (the message says why), 2 usage or configuration.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <iostream>
#include <map>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "keyline/common/time_text.h"
#include "keyline/broker/curve_keys.h"
#include "keyline/broker/queue_inspector.h"
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

// The process holding the RocksDB lock in `db_dir` (a running KMS): its pid, 0 when it runs in
// another PID namespace (a container seen from outside); nothing when no process holds it.
// F_GETLK only asks: it never takes the lock, so a health check cannot get in a starting KMS's way.
std::optional<pid_t> LockHolder(const std::filesystem::path& db_dir) {
  int fd = ::open((db_dir / "LOCK").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  const int rc = ::fcntl(fd, F_GETLK, &probe);
  ::close(fd);
  if (rc != 0 || probe.l_type == F_UNLCK) return std::nullopt;
  return probe.l_pid;
}

// A running KMS owns its database; this reads it as a RocksDB secondary instance (broker's
// QueueInspector): what each plant's link last knew, and what waits for it. The catalog, stock
// and alerts need the KMS itself: keylinectl status.
int RunningStatus(const keyline::kms::KmsConfig& config, pid_t pid, bool json) {
  auto inspector = keyline::broker::QueueInspector::Open(config.kms.data_dir);
  if (!inspector.ok()) return Fail(inspector.status());
  auto outbound = (*inspector)->Outbound();
  if (!outbound.ok()) return Fail(outbound.status());
  auto inbound = (*inspector)->Inbound();
  if (!inbound.ok()) return Fail(inbound.status());
  struct PlantView {
    int64_t last_contact_us = 0;
    std::string last_error;
    uint64_t waiting = 0;
    uint64_t applied_through = 0;
  };
  std::map<std::string, PlantView> plants;
  for (const auto& q : *outbound) {
    PlantView& p = plants[q.queue.peer];
    p.waiting += q.depth;
    p.last_contact_us = std::max(p.last_contact_us, q.link.last_contact_us);
    if (!q.link.last_error.empty()) p.last_error = q.link.last_error;
  }
  for (const auto& in : *inbound) {
    PlantView& p = plants[in.from.peer];
    p.applied_through += in.applied_through;
    p.last_contact_us = std::max(p.last_contact_us, in.link.last_contact_us);
    if (!in.link.last_error.empty()) p.last_error = in.link.last_error;
  }
  if (json) {
    nlohmann::json out = {{"running", true}, {"pid", pid}, {"plants", nlohmann::json::array()}};
    for (const auto& [plant, p] : plants) {
      out["plants"].push_back({{"plant", plant},
                               {"last_contact", p.last_contact_us ? keyline::UtcTimeText(p.last_contact_us) : ""},
                               {"last_error", p.last_error},
                               {"messages_waiting", p.waiting},
                               {"messages_applied", p.applied_through}});
    }
    std::cout << out.dump() << '\n';
    return 0;
  }
  std::cout << "KMS running (" << (pid != 0 ? "pid " + std::to_string(pid) : "another PID namespace") << ") on "
            << config.kms.data_dir.string() << '\n';
  if (plants.empty()) std::cout << "no plant has a link yet\n";
  for (const auto& [plant, p] : plants) {
    std::cout << "  " << plant << ": last contact " << keyline::UtcTimeText(p.last_contact_us) << ", " << p.waiting
              << " messages waiting, " << p.applied_through << " applied from it"
              << (p.last_error.empty() ? "" : ", last error: " + p.last_error) << '\n';
  }
  std::cout << "stock, records and alerts: keylinectl status\n";
  return 0;
}

int StatusCommand(const std::string& path, bool running_only, bool json) {
  auto loaded = keyline::kms::LoadKmsConfig(path);
  if (!loaded.ok()) return Fail(loaded.status(), 2);
  const std::filesystem::path db_dir = loaded->kms.data_dir / "db";
  if (!std::filesystem::exists(db_dir / "CURRENT")) {
    return Fail(keyline::NotFoundError(db_dir.string() + ": no database: this KMS has not started yet"));
  }
  if (std::optional<pid_t> holder = LockHolder(db_dir)) return RunningStatus(*loaded, *holder, json);
  if (running_only) {
    return Fail(keyline::UnavailableError("no KMS is running on " + loaded->kms.data_dir.string()));
  }
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

int CheckConfig(const std::string& path) {
  auto config = keyline::kms::LoadKmsConfig(path);
  if (!config.ok()) return Fail(config.status(), 2);
  std::cout << path << ": ok (link " << config->kms.link_bind << ", admin " << config->kms.admin_bind << ", "
            << config->kms.admin_keys.size() << " admin key(s), " << config->kms.admin_key_files.size()
            << " admin key file(s) read at start)\n";
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
  auto* status = app.add_subcommand(
      "status", "a stopped KMS's status page, or a running KMS's plant links (read without disturbing it)");
  status->add_option("--config", config, "kms.toml")->required();
  bool running_only = false;
  status->add_flag("--running", running_only,
                   "exit 1 unless a KMS is running on this data dir; never opens it for writing (health checks)");
  status->add_flag("--json", json, "one JSON object (a running KMS)");
  auto* check = app.add_subcommand("check-config", "read and check the configuration only");
  check->add_option("--config", config, "kms.toml")->required()->check(CLI::ExistingFile);
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
  if (*check) return CheckConfig(config);
  // status must not fill a health check's output with the database's informational lines.
  (void)keyline::InitLogging({"kms", *status ? "warn" : "info", std::nullopt});
  if (*keys) return Keys(config, json);
  if (*status) return StatusCommand(config, running_only, json);
  if (*admin_key) return AdminKey(out);
  if (config.empty()) {
    std::cerr << "keyline-kms: --config is required (see --help)\n";
    return 2;
  }
  return Run(config);
}

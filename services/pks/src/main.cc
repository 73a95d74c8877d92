// keyline-pks: the plant's production key server. A thin main over keyline::pks.
//
//   keyline-pks --config pks.toml                   run (also: keyline-pks run --config ...)
//   keyline-pks status (--config pks.toml | --data-dir DIR) [--json]   stock, reservations, records
//   keyline-pks check-config --config pks.toml      read and check the file only (like nginx -t)
//   keyline-pks keys show --config pks.toml [--json]  public keys to register at the KMS
//   keyline-pks transport-key import --config pks.toml --name REF --key-file FILE
//
// Exit status: 0 ok, 1 the command failed (the message says why), 2 usage or configuration.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <iostream>
#include <thread>

#include "keyline/common/time_text.h"
#include "keyline/common/log.h"
#include "keyline/pks/pks_config.h"
#include "keyline/pks/pks_service.h"

namespace {

using keyline::pks::PksConfig;

std::atomic<bool> stop_requested{false};

void OnSignal(int) { stop_requested.store(true); }

keyline::StatusOr<PksConfig> LoadConfig(const std::string& path) {
  return keyline::pks::LoadPksConfig(path);
}

int Run(const PksConfig& config) {
  keyline::LogOptions log{"pks-" + config.plant_id, config.log_level, config.log_file};
  if (auto s = keyline::InitLogging(log); !s.ok()) {
    std::cerr << "keyline-pks: " << s.message() << '\n';
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  auto service = keyline::pks::PksService::Start(config);
  if (!service.ok()) {
    spdlog::critical("cannot start: {}", service.status().ToString());
    return 1;
  }
  while (!stop_requested.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  spdlog::info("stopping");
  service->reset();
  spdlog::info("stopped");
  return 0;
}

int Status(const std::string& config_path, const std::string& data_dir, bool json) {
  auto snapshot = [&]() -> keyline::StatusOr<keyline::pks::PksSnapshot> {
    if (!data_dir.empty()) return keyline::pks::ReadPksStatus(std::filesystem::path(data_dir));
    ASSIGN_OR_RETURN(PksConfig config, LoadConfig(config_path));
    return keyline::pks::ReadPksStatus(config);
  }();
  if (!snapshot.ok()) {
    std::cerr << "keyline-pks: " << snapshot.status().message() << '\n';
    return 1;
  }
  const auto& s = *snapshot;
  if (json) {
    nlohmann::json out;
    out["plant"] = s.plant_id;
    out["config_version"] = s.config_version;
    out["open_reservations"] = s.open_reservations;
    out["records_written"] = s.records_written;
    out["records_queued"] = s.records_queued;
    out["stock_requests_open"] = s.stock_requests_open;
    out["kms_last_contact"] = s.kms_last_contact_us ? keyline::UtcTimeText(s.kms_last_contact_us) : "";
    out["kms_last_error"] = s.kms_last_error;
    out["products"] = nlohmann::json::array();
    for (const auto& p : s.products) {
      out["products"].push_back({{"product", p.product}, {"configured", p.configured},
                                 {"min_stock", p.min_stock}, {"target_stock", p.target_stock},
                                 {"in_stock", p.in_stock}, {"reserved", p.reserved},
                                 {"requested", p.requested}, {"injected", p.injected},
                                 {"burned", p.burned}, {"certificates_issued", p.certificates_issued}});
    }
    out["issuing_cas"] = nlohmann::json::array();
    for (const auto& ca : s.issuing_cas) {
      out["issuing_cas"].push_back({{"oem", ca.oem}, {"key_name", ca.key_name}, {"subject", ca.subject},
                                    {"not_after", ca.not_after_us ? keyline::UtcTimeText(ca.not_after_us) : ""}});
    }
    out["certificate_budgets"] = nlohmann::json::array();
    for (const auto& b : s.certificate_budgets) {
      out["certificate_budgets"].push_back({{"oem", b.oem}, {"granted", b.granted}, {"issued", b.issued},
                                            {"pending", b.pending}, {"available", b.available},
                                            {"requested", b.requested}, {"budget_min", b.budget_min},
                                            {"budget_target", b.budget_target}});
    }
    out["queues"] = nlohmann::json::array();
    for (const auto& q : s.queues) {
      out["queues"].push_back({{"peer", q.peer}, {"stream", q.stream}, {"depth", q.depth}});
    }
    std::cout << out.dump() << '\n';
    return 0;
  }
  std::printf("plant %s   configuration version %llu\n", s.plant_id.c_str(),
              static_cast<unsigned long long>(s.config_version));
  std::printf("%-24s %9s %9s %9s %9s %9s %9s %9s %9s\n", "PRODUCT", "IN_STOCK", "MIN", "TARGET",
              "RESERVED", "REQUESTED", "INJECTED", "BURNED", "CERTS");
  for (const auto& p : s.products) {
    std::printf("%-24s %9llu %9s %9s %9llu %9llu %9llu %9llu %9llu%s\n", p.product.c_str(),
                static_cast<unsigned long long>(p.in_stock),
                p.configured ? std::to_string(p.min_stock).c_str() : "-",
                p.configured ? std::to_string(p.target_stock).c_str() : "-",
                static_cast<unsigned long long>(p.reserved),
                static_cast<unsigned long long>(p.requested),
                static_cast<unsigned long long>(p.injected),
                static_cast<unsigned long long>(p.burned),
                static_cast<unsigned long long>(p.certificates_issued),
                p.configured && p.in_stock < p.min_stock ? "   below minimum" : "");
  }
  std::printf("open reservations %llu   records written %llu, queued for the KMS %llu   "
              "stock requests open %llu\n",
              static_cast<unsigned long long>(s.open_reservations),
              static_cast<unsigned long long>(s.records_written),
              static_cast<unsigned long long>(s.records_queued),
              static_cast<unsigned long long>(s.stock_requests_open));
  for (const auto& ca : s.issuing_cas) {
    std::printf("issuing CA for %s: %s (%s), valid until %s\n", ca.oem.c_str(), ca.subject.c_str(),
                ca.key_name.c_str(), keyline::UtcTimeText(ca.not_after_us).c_str());
  }
  if (s.issuing_cas.empty()) std::printf("issuing CAs: none\n");
  for (const auto& b : s.certificate_budgets) {
    std::printf("issuing budget for %s: %llu available (%llu granted, %llu issued, %llu held by reservations)"
                "   min %u target %u%s%s\n",
                b.oem.c_str(), static_cast<unsigned long long>(b.available),
                static_cast<unsigned long long>(b.granted), static_cast<unsigned long long>(b.issued),
                static_cast<unsigned long long>(b.pending), b.budget_min, b.budget_target,
                b.requested ? ("   " + std::to_string(b.requested) + " requested").c_str() : "",
                b.available == 0 ? "   SPENT: no certificates until the KMS grants more" : "");
  }
  std::printf("last contact with the KMS: %s%s%s\n", keyline::UtcTimeText(s.kms_last_contact_us).c_str(),
              s.kms_last_error.empty() ? "" : "   last error: ", s.kms_last_error.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyline-pks: the plant's production key server"};
  std::string config_path;
  app.add_option("--config", config_path, "pks.toml")->check(CLI::ExistingFile);
  CLI::App* run = app.add_subcommand("run", "serve (the default)");
  run->add_option("--config", config_path, "pks.toml")->check(CLI::ExistingFile);
  bool json = false;
  CLI::App* status = app.add_subcommand("status", "stock, reservations, records, last contact");
  std::string data_dir;
  auto* status_config = status->add_option("--config", config_path, "pks.toml")->check(CLI::ExistingFile);
  status->add_option("--data-dir", data_dir, "the PKS's data dir, instead of --config")
      ->check(CLI::ExistingDirectory)
      ->excludes(status_config);
  status->add_flag("--json", json, "one JSON object");
  CLI::App* check = app.add_subcommand("check-config", "read and check the configuration only");
  check->add_option("--config", config_path, "pks.toml")->required()->check(CLI::ExistingFile);
  CLI::App* keys = app.add_subcommand("keys", "the plant's public keys");
  CLI::App* keys_show = keys->add_subcommand("show", "print what `keylinectl plant add` needs");
  keys_show->add_option("--config", config_path, "pks.toml")->required()->check(CLI::ExistingFile);
  keys_show->add_flag("--json", json, "one JSON object");
  keys->require_subcommand(1);
  CLI::App* transport = app.add_subcommand("transport-key", "transport keys in the plant HSM");
  CLI::App* transport_import =
      transport->add_subcommand("import", "import a product's transport key (PKS stopped)");
  std::string ref;
  std::string key_file;
  transport_import->add_option("--config", config_path, "pks.toml")->required()->check(CLI::ExistingFile);
  transport_import->add_option("--name", ref, "the product's transport_key_ref")->required();
  transport_import->add_option("--key-file", key_file, "file with 32 hex digits, mode 0600")
      ->required()
      ->check(CLI::ExistingFile);
  transport->require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "keyline-pks: " << e.what() << '\n';
    return 2;
  }
  if (*status && !data_dir.empty()) {
    if (!keyline::InitLogging({"keyline-pks", "warn", std::nullopt}).ok()) return 1;
    return Status("", data_dir, json);
  }
  if (config_path.empty()) {
    std::cerr << "keyline-pks: --config is required\n";
    return 2;
  }
  auto config = LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << "keyline-pks: " << config.status().message() << '\n';
    return 2;
  }
  if (*check) {
    std::cout << config_path << ": ok (plant " << config->plant_id << ")\n";
    return 0;
  }
  if (!keyline::InitLogging({"keyline-pks", "warn", std::nullopt}).ok()) return 1;
  if (*status) return Status(config_path, "", json);
  if (*keys_show) {
    auto shown = keyline::pks::ShowPlantKeys(*config);
    if (!shown.ok()) {
      std::cerr << "keyline-pks: " << shown.status().message() << '\n';
      return 1;
    }
    if (json) {
      std::cout << nlohmann::json{{"plant", config->plant_id},
                                  {"curve_public_key", shown->curve_public_key_z85},
                                  {"wrap_key", shown->wrap_key_hex},
                                  {"signing_key", shown->signing_key_hex}}
                       .dump()
                << '\n';
    } else {
      std::cout << "plant        " << config->plant_id << "\ncurve key    "
                << shown->curve_public_key_z85 << "\nwrap key     " << shown->wrap_key_hex
                << "\nsigning key  " << shown->signing_key_hex << '\n';
    }
    return 0;
  }
  if (*transport_import) {
    keyline::Status imported = keyline::pks::ImportTransportKey(*config, ref, key_file);
    if (!imported.ok()) {
      std::cerr << "keyline-pks: " << imported.message() << '\n';
      return 1;
    }
    std::cout << "transport key \"" << ref << "\" imported\n";
    return 0;
  }
  return Run(*config);
}

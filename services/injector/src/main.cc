// keyline-injector: the injector agent beside one EOL station. A thin main over
// keyline::injector (docs/injector.md).
//
//   keyline-injector --config injector.toml            run (also: keyline-injector run --config ...)
//   keyline-injector provision --config injector.toml --uid HEX --product P [--json] [--timeout-ms N]
//                                                      the EOL tester's call, from a shell
//   keyline-injector status --config injector.toml [--json]
//   keyline-injector check-config --config injector.toml
//
// Exit status: 0 ok (provision: the ECU is provisioned), 1 failed (provision: it is not; the
// outcome says why), 2 usage or configuration.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <iostream>
#include <thread>

#include "keyline/common/time_text.h"
#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/hsm/she.h"
#include "keyline/injector/injector_config.h"
#include "keyline/injector/injector_service.h"

namespace {

using keyline::injector::InjectorConfig;
using keyline::injector::ProvisionOutcome;

std::atomic<bool> stop_requested{false};

void OnSignal(int) { stop_requested.store(true); }

int Fail(int code, const std::string& message) {
  std::cerr << "keyline-injector: " << message << '\n';
  return code;
}

int Run(const InjectorConfig& config) {
  keyline::LogOptions log{"injector-" + config.station_id, config.log_level, config.log_file};
  if (auto s = keyline::InitLogging(log); !s.ok()) return Fail(2, s.message());
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  auto agent = keyline::injector::InjectorService::Start(config);
  if (!agent.ok()) {
    spdlog::critical("cannot start: {}", agent.status().ToString());
    return 1;
  }
  std::cout << "listening on " << (*agent)->eol_endpoint() << std::endl;
  while (!stop_requested.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  spdlog::info("stopping");
  agent->reset();
  spdlog::info("stopped");
  return 0;
}

nlohmann::json ToJson(const ProvisionOutcome& o) {
  nlohmann::json slots = nlohmann::json::array();
  for (const auto& slot : o.slots) {
    slots.push_back({{"slot", slot.slot},
                     {"outcome", slot.error == keyline::injector::EcuError::kNone
                                     ? "ok"
                                     : std::string(keyline::injector::EcuErrorName(slot.error))},
                     {"attempts", slot.attempts}});
  }
  nlohmann::json out = {{"ecu_uid", keyline::ToHex(o.ecu_uid)},
          {"product", o.product},
          {"station", o.station},
          {"plant", o.plant},
          {"outcome", o.provisioned() ? "provisioned" : o.outcome},
          {"message", o.message},
          {"key_set_id", o.key_set_id},
          {"package_id", o.package_id},
          {"report", o.report},
          {"repeated", o.repeated},
          {"slots", slots}};
  if (o.certificate) {
    out["certificate"] = {{"slot", o.certificate->slot},
                          {"outcome", o.certificate->error == keyline::injector::EcuError::kNone
                                          ? "ok"
                                          : std::string(keyline::injector::EcuErrorName(
                                                o.certificate->error))},
                          {"certificate", o.certificate->certificate},
                          {"detail", o.certificate->detail}};
  }
  return out;
}

void PrintOutcome(const ProvisionOutcome& o) {
  std::printf("ECU %s as %s at %s: %s%s\n", keyline::ToHex(o.ecu_uid).c_str(), o.product.c_str(),
              o.station.c_str(), o.provisioned() ? "provisioned" : o.outcome.c_str(),
              o.repeated ? " (done earlier)" : "");
  if (!o.message.empty()) std::printf("  %s\n", o.message.c_str());
  for (const auto& slot : o.slots) {
    std::printf("  slot %2u %-16s %-18s attempts %u\n", slot.slot,
                std::string(keyline::hsm::SheSlotName(slot.slot)).c_str(),
                slot.error == keyline::injector::EcuError::kNone
                    ? "ok"
                    : std::string(keyline::injector::EcuErrorName(slot.error)).c_str(),
                slot.attempts);
  }
  if (o.certificate) {
    std::printf("  certificate slot %s: %s%s%s\n", o.certificate->slot.c_str(),
                o.certificate->error == keyline::injector::EcuError::kNone
                    ? "issued, stored and confirmed"
                    : std::string(keyline::injector::EcuErrorName(o.certificate->error)).c_str(),
                o.certificate->detail.empty() ? "" : ": ", o.certificate->detail.c_str());
  }
  if (!o.report.empty()) {
    std::printf("  result %s\n", o.report == "acknowledged" ? "recorded by the PKS"
                                                          : "queued for the PKS (durable)");
  }
}

int Provision(const InjectorConfig& config, const std::string& uid_hex, const std::string& product,
              bool json, int timeout_ms) {
  auto bytes = keyline::ParseHex(uid_hex, "--uid", 15);
  if (!bytes.ok()) return Fail(2, bytes.status().message());
  keyline::injector::EcuUid uid{};
  std::copy(bytes->begin(), bytes->end(), uid.begin());
  if (keyline::hsm::IsWildcardUid(uid)) return Fail(2, "--uid: the all-zero UID is not an ECU");
  auto outcome = keyline::injector::CallProvision(config, uid, product, timeout_ms);
  if (!outcome.ok()) return Fail(1, outcome.status().message());
  if (json) {
    std::cout << ToJson(*outcome).dump() << '\n';
  } else {
    PrintOutcome(*outcome);
  }
  return outcome->provisioned() ? 0 : 1;
}

int Status(const InjectorConfig& config, bool json) {
  auto snapshot = keyline::injector::ReadInjectorStatus(config);
  if (!snapshot.ok()) return Fail(1, snapshot.status().message());
  const auto& s = *snapshot;
  if (json) {
    std::cout << nlohmann::json{{"station", s.station},
                                {"plant", s.plant},
                                {"provisioned", s.provisioned},
                                {"failed", s.failed},
                                {"pending", s.pending},
                                {"messages_queued", s.messages_queued},
                                {"pks_last_contact",
                                 s.pks_last_contact_us ? keyline::UtcTimeText(s.pks_last_contact_us) : ""},
                                {"pks_last_error", s.pks_last_error}}
                     .dump()
              << '\n';
    return 0;
  }
  std::printf("station %s of %s\n", s.station.c_str(), s.plant.c_str());
  std::printf("ECUs provisioned %llu   failed %llu   fetched, not reported %llu\n",
              static_cast<unsigned long long>(s.provisioned),
              static_cast<unsigned long long>(s.failed),
              static_cast<unsigned long long>(s.pending));
  std::printf("messages queued for the PKS %llu\n",
              static_cast<unsigned long long>(s.messages_queued));
  std::printf("last contact with the PKS: %s%s%s\n", keyline::UtcTimeText(s.pks_last_contact_us).c_str(),
              s.pks_last_error.empty() ? "" : "   last error: ", s.pks_last_error.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyline-injector: the injector agent beside an EOL station"};
  std::string config_path;
  app.add_option("--config", config_path, "injector.toml")->check(CLI::ExistingFile);
  CLI::App* run = app.add_subcommand("run", "serve the EOL station (the default)");
  run->add_option("--config", config_path, "injector.toml")->check(CLI::ExistingFile);

  CLI::App* provision = app.add_subcommand("provision", "provision one ECU through the agent");
  std::string uid;
  std::string product;
  bool json = false;
  int timeout_ms = 60000;
  provision->add_option("--config", config_path, "injector.toml")->check(CLI::ExistingFile);
  provision->add_option("--uid", uid, "the ECU's SHE UID, 30 hex digits")->required();
  provision->add_option("--product", product, "the product to provision it as")->required();
  provision->add_flag("--json", json, "one JSON object");
  provision->add_option("--timeout-ms", timeout_ms, "wait this long for the agent (default 60000)")
      ->check(CLI::Range(100, 3600000));

  CLI::App* status = app.add_subcommand("status", "ECUs provisioned, results queued, last contact");
  status->add_option("--config", config_path, "injector.toml")->check(CLI::ExistingFile);
  status->add_flag("--json", json, "one JSON object");
  CLI::App* check = app.add_subcommand("check-config", "read and check the configuration only");
  check->add_option("--config", config_path, "injector.toml")->check(CLI::ExistingFile);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    return Fail(2, e.what());
  }
  if (config_path.empty()) return Fail(2, "--config is required");
  auto config = keyline::injector::LoadInjectorConfig(config_path);
  if (!config.ok()) return Fail(2, config.status().message());
  if (*check) {
    std::cout << config_path << ": ok (station " << config->station_id << " of "
              << config->plant_id << ")\n";
    return 0;
  }
  if (*provision || *status) {
    if (!keyline::InitLogging({"keyline-injector", "warn", std::nullopt}).ok()) return 1;
  }
  if (*provision) return Provision(*config, uid, product, json, timeout_ms);
  if (*status) return Status(*config, json);
  return Run(*config);
}

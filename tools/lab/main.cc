// keyline-lab: the one-command lab (docs/lab.md). A thin main over keyline::lab.
//
//   keyline-lab up --workdir DIR [--plants N --stations M] [--key-sets N]
//   keyline-lab provision --workdir DIR --ecus N [--plant P] [--json]
//   keyline-lab status --workdir DIR [--json]
//   keyline-lab cut|reconnect --workdir DIR PLANT
//   keyline-lab restart --workdir DIR NAME
//   keyline-lab export --workdir DIR
//   keyline-lab down --workdir DIR
//   keyline-lab demo [--workdir DIR]
//   keyline-lab relay --listen tcp://127.0.0.1:P --to tcp://127.0.0.1:Q     (started by up)
//
// Exit status: 0 done, 1 failed (the message names what), 2 usage.
#include <signal.h>

#include <iostream>

#include <CLI/CLI.hpp>

#include "keyline/common/log.h"
#include "keyline/lab/demo.h"
#include "keyline/lab/lab.h"
#include "keyline/lab/relay.h"

namespace {

using keyline::Status;
using keyline::StatusCode;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

int Report(const Status& status) {
  if (status.ok()) return 0;
  std::cerr << "keyline-lab: " << status.message() << '\n';
  const bool usage = status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kOutOfRange;
  return usage ? kExitUsage : kExitFailed;
}

keyline::lab::TcpRelay* running_relay = nullptr;

void OnRelaySignal(int signal) {
  if (running_relay == nullptr) return;
  if (signal == SIGUSR1) running_relay->Cut();
  if (signal == SIGUSR2) running_relay->Reconnect();
  if (signal == SIGTERM || signal == SIGINT) running_relay->Stop();
}

int RunRelay(const keyline::lab::RelayOptions& options) {
  if (!keyline::InitLogging({"relay", "info", std::nullopt}).ok()) return kExitFailed;
  auto relay = keyline::lab::TcpRelay::Open(options);
  if (!relay.ok()) return Report(relay.status());
  running_relay = relay->get();
  struct sigaction action {};
  action.sa_handler = OnRelaySignal;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGUSR1, SIGUSR2, SIGTERM, SIGINT}) sigaction(signal, &action, nullptr);
  Status served = (*relay)->Run();
  running_relay = nullptr;
  return Report(served);
}

}  // namespace

int main(int argc, char** argv) {
  namespace lab = keyline::lab;
  CLI::App app{"keyline-lab: a whole Keyline lab (KMS, plants, injectors, simulated ECUs) on this machine"};
  app.require_subcommand(1);
  std::string workdir;
  bool json = false;

  lab::LabOptions up_options;
  auto* up = app.add_subcommand("up", "generate keys and configs, start and register every process, import stock");
  up->add_option("--workdir", workdir, "the lab's directory (created; must not hold a lab yet)")->required();
  up->add_option("--plants", up_options.plants, "plants (plant-a, plant-b, ...)")->capture_default_str();
  up->add_option("--stations", up_options.stations, "stations (injectors) per plant")->capture_default_str();
  up->add_option("--key-sets", up_options.key_sets, "key sets in the OEM batch imported at start")
      ->capture_default_str();

  int ecus = 0;
  std::string plant;
  auto* provision = app.add_subcommand("provision", "provision new ECUs through the injectors");
  provision->add_option("--workdir", workdir, "the lab's directory")->required();
  provision->add_option("--ecus", ecus, "how many new ECUs")->required();
  provision->add_option("--plant", plant, "only this plant's stations (default: every plant)");
  provision->add_flag("--json", json, "last line: {\"provisioned\", \"failed\", \"ecus\": [...]}");

  auto* status = app.add_subcommand("status", "processes, stock vs quota, queued records, last contact");
  status->add_option("--workdir", workdir, "the lab's directory")->required();
  status->add_flag("--json", json, "one JSON object");

  auto* cut = app.add_subcommand("cut", "cut a plant off from the KMS (its relay drops and refuses connections)");
  cut->add_option("--workdir", workdir, "the lab's directory")->required();
  cut->add_option("plant", plant, "plant id, e.g. plant-b")->required();
  auto* reconnect = app.add_subcommand("reconnect", "restore a plant's link to the KMS");
  reconnect->add_option("--workdir", workdir, "the lab's directory")->required();
  reconnect->add_option("plant", plant, "plant id, e.g. plant-b")->required();

  std::string name;
  auto* restart = app.add_subcommand("restart", "start a stopped process of the lab again, exactly as before");
  restart->add_option("--workdir", workdir, "the lab's directory")->required();
  restart->add_option("name", name, "process name from lab.json, e.g. pks-a")->required();

  auto* export_file = app.add_subcommand("export", "request and export the OEM's verification file");
  export_file->add_option("--workdir", workdir, "the lab's directory")->required();

  auto* down = app.add_subcommand("down", "stop every process of the lab");
  down->add_option("--workdir", workdir, "the lab's directory")->required();

  auto* demo = app.add_subcommand("demo", "the whole story end to end, in under a minute");
  demo->add_option("--workdir", workdir, "keep the lab here (default: a new temporary directory)");

  lab::RelayOptions relay_options;
  auto* relay = app.add_subcommand("relay", "a cuttable TCP relay (SIGUSR1 cut, SIGUSR2 reconnect); up starts them");
  relay->add_option("--listen", relay_options.listen, "tcp://HOST:PORT to accept on")->required();
  relay->add_option("--to", relay_options.to, "tcp://HOST:PORT to forward to")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::cerr << "keyline-lab: " << e.what() << '\n';
    return kExitUsage;
  }

  if (*relay) return RunRelay(relay_options);
  if (*up) {
    up_options.workdir = workdir;
    return Report(lab::LabUp(up_options, std::cout));
  }
  if (*provision) {
    auto summary = lab::LabProvision(workdir, ecus, plant, json ? std::cerr : std::cout);
    if (!summary.ok()) return Report(summary.status());
    if (json) {
      std::cout << lab::ProvisionSummaryJson(*summary) << std::endl;
    } else {
      std::cout << summary->provisioned << " provisioned, " << summary->failed << " failed\n";
    }
    return summary->failed == 0 ? 0 : kExitFailed;
  }
  if (*status) {
    auto report = lab::ReadLabReport(workdir);
    if (!report.ok()) return Report(report.status());
    std::cout << (json ? lab::LabReportJson(*report) + "\n" : lab::FormatLabReport(*report));
    return 0;
  }
  if (*cut) return Report(lab::LabCut(workdir, plant, std::cout));
  if (*reconnect) return Report(lab::LabReconnect(workdir, plant, std::cout));
  if (*restart) return Report(lab::LabRestart(workdir, name, std::cout));
  if (*export_file) return Report(lab::LabExport(workdir, std::cout).status());
  if (*down) return Report(lab::LabDown(workdir, std::cout));
  if (*demo) return Report(lab::RunDemo(workdir, std::cout));
  return kExitUsage;
}

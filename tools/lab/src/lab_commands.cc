// keyline-lab provision, restart, cut, reconnect, export and down: each reads DIR/lab.json.
#include <signal.h>
#include <sys/random.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <ostream>
#include <set>
#include <thread>

#include "keyline/common/hex.h"
#include "keyline/lab/lab.h"
#include "keyline/lab/lab_state.h"
#include "lab_process.h"
#include "lab_tools.h"

namespace keyline::lab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A fresh ECU UID: 15 random bytes, never all zero (the SHE wildcard UID addresses no single
// ECU) and never one already handed out in this run.
StatusOr<std::string> NewEcuUid(std::set<std::string>& used) {
  while (true) {
    std::array<uint8_t, 15> uid{};
    if (getrandom(uid.data(), uid.size(), 0) != static_cast<ssize_t>(uid.size())) {
      return InternalError("getrandom failed: cannot make ECU UIDs");
    }
    if (std::all_of(uid.begin(), uid.end(), [](uint8_t b) { return b == 0; })) continue;
    std::string hex = ToHex(uid);
    if (used.insert(hex).second) return hex;
  }
}

// One station's share of a provisioning run: its ECUs, one at a time.
struct StationLane {
  std::string plant;
  std::string station;
  LabProcess injector;
  std::vector<size_t> ecus;  // indexes into ProvisionSummary::ecus
};

void ProvisionOne(const LabTools& tools, const StationLane& lane, const std::string& product, ProvisionedEcu& ecu) {
  // The injector gives up first and says why; the lab's own limit is only a backstop.
  auto ran = RunTool({tools.Binary("keyline-injector").string(), "provision", "--config", lane.injector.config.string(),
                      "--uid", ecu.ecu_uid, "--product", product, "--json", "--timeout-ms", "30000"},
                     {}, {}, 45s);
  if (!ran.ok()) {
    ecu.outcome = std::string(StatusCodeName(ran.status().code()));
    ecu.message = ran.status().message();
    return;
  }
  auto answer = LastJsonLine(ran->out, "keyline-injector provision");
  if (!answer.ok() || !answer->contains("outcome")) {
    ecu.outcome = "INJECTOR_ERROR";
    ecu.message = "keyline-injector provision exited " + std::to_string(ran->exit_code) + ": " + ran->err;
    while (!ecu.message.empty() && ecu.message.back() == '\n') ecu.message.pop_back();
    return;
  }
  ecu.outcome = answer->at("outcome").get<std::string>();
  ecu.message = answer->value("message", "");
  const auto certificate = answer->value("certificate", nlohmann::json::object());
  ecu.certified = certificate.value("outcome", "") == "ok" && !certificate.value("certificate", "").empty();
}

Status SignalRelay(const fs::path& workdir, const std::string& plant, bool cut, std::ostream& out) {
  ASSIGN_OR_RETURN(LabState state, ReadLabState(workdir));
  ASSIGN_OR_RETURN(LabPlant * lab_plant, FindLabPlant(state, plant));
  ASSIGN_OR_RETURN(LabProcess * relay, FindLabProcess(state, lab_plant->relay));
  if (!IsRunning(relay->identity)) {
    return FailedPreconditionError(relay->name + " is not running (keyline-lab restart --workdir " + workdir.string() +
                                   " " + relay->name + ")");
  }
  const uint64_t offset = FileSize(relay->log_file);
  kill(relay->identity.pid, cut ? SIGUSR1 : SIGUSR2);
  RETURN_IF_ERROR(WaitForLogLine(relay->name, relay->identity, relay->log_file, offset,
                                 cut ? "refusing new connections" : "accepting on", 10s));
  Status recorded = UpdateLabState(workdir, [&](LabState& s) -> Status {
    ASSIGN_OR_RETURN(LabPlant * p, FindLabPlant(s, plant));
    p->cut = cut;
    return Status::Ok();
  });
  RETURN_IF_ERROR(recorded);
  out << plant << (cut ? ": KMS link cut (" + relay->name + " dropped its connections and refuses new ones)"
                       : ": KMS link restored (" + relay->name + " accepts connections again)")
      << '\n';
  return Status::Ok();
}

}  // namespace

StatusOr<ProvisionSummary> LabProvision(const fs::path& workdir, int ecus, const std::string& plant,
                                        std::ostream& out) {
  if (ecus < 1) return OutOfRangeError("--ecus must be at least 1");
  ASSIGN_OR_RETURN(LabState state, ReadLabState(workdir));
  LabTools tools(state.bin_dir, state.keylinectl_env);
  std::vector<LabPlant*> plants;
  if (plant.empty()) {
    for (auto& p : state.plants) plants.push_back(&p);
  } else {
    ASSIGN_OR_RETURN(LabPlant * p, FindLabPlant(state, plant));
    plants.push_back(p);
  }
  // Stations interleaved across plants (a-1, b-1, a-2, b-2, ...), so that a few ECUs already
  // reach every plant.
  std::vector<StationLane> lanes;
  for (size_t s = 0;; ++s) {
    bool any = false;
    for (LabPlant* p : plants) {
      if (s >= p->stations.size()) continue;
      any = true;
      ASSIGN_OR_RETURN(LabProcess * injector, FindLabProcess(state, p->stations[s].injector));
      if (!IsRunning(injector->identity)) {
        return FailedPreconditionError(injector->name + " (station " + p->stations[s].station +
                                       ") is not running: keyline-lab restart --workdir " + workdir.string() + " " +
                                       injector->name);
      }
      lanes.push_back({p->plant, p->stations[s].station, *injector, {}});
    }
    if (!any) break;
  }
  if (lanes.empty()) {
    return FailedPreconditionError("this lab has no stations to provision ECUs with (it was started with --stations 0)");
  }
  RETURN_IF_ERROR(tools.CheckBinaries({"keyline-injector"}));
  ProvisionSummary summary;
  std::set<std::string> used;
  for (int i = 0; i < ecus; ++i) {
    StationLane& lane = lanes[static_cast<size_t>(i) % lanes.size()];
    ASSIGN_OR_RETURN(std::string uid, NewEcuUid(used));
    summary.ecus.push_back({uid, lane.plant, lane.station, "", ""});
    lane.ecus.push_back(static_cast<size_t>(i));
  }
  std::mutex out_mu;
  std::vector<std::thread> workers;
  for (const auto& lane : lanes) {
    workers.emplace_back([&, lane_ptr = &lane] {
      for (size_t index : lane_ptr->ecus) {
        ProvisionedEcu& ecu = summary.ecus[index];
        ProvisionOne(tools, *lane_ptr, state.product, ecu);
        std::lock_guard lock(out_mu);
        out << "  " << ecu.station << "  " << ecu.ecu_uid << "  " << ecu.outcome
            << (ecu.outcome == "provisioned" || ecu.message.empty() ? "" : ": " + ecu.message) << std::endl;
      }
    });
  }
  for (auto& w : workers) w.join();
  for (const auto& ecu : summary.ecus) {
    if (ecu.outcome == "provisioned") {
      ++summary.provisioned;
    } else {
      ++summary.failed;
    }
  }
  return summary;
}

std::string ProvisionSummaryJson(const ProvisionSummary& summary) {
  // Keys in the documented order, for people reading it as much as for parsers.
  using ordered = nlohmann::ordered_json;
  ordered ecus = ordered::array();
  for (const auto& e : summary.ecus) {
    ecus.push_back({{"ecu_uid", e.ecu_uid}, {"plant", e.plant}, {"station", e.station}, {"outcome", e.outcome},
                    {"certified", e.certified}});
  }
  return ordered{{"provisioned", summary.provisioned}, {"failed", summary.failed}, {"ecus", ecus}}.dump();
}

Status LabRestart(const fs::path& workdir, const std::string& name, std::ostream& out) {
  LabProcess started;
  uint64_t offset = 0;
  bool recut = false;
  Status spawned = UpdateLabState(workdir, [&](LabState& state) -> Status {
    ASSIGN_OR_RETURN(LabProcess * process, FindLabProcess(state, name));
    if (IsRunning(process->identity)) {
      return FailedPreconditionError(name + " is running (pid " + std::to_string(process->identity.pid) +
                                     "); only a stopped process is restarted");
    }
    RETURN_IF_ERROR(SpawnLabProcess(*process, offset));
    if (process->role == "relay") {
      const LabPlant* plant = state.FindPlant(process->plant);
      recut = plant != nullptr && plant->cut;
    }
    started = *process;
    return Status::Ok();
  });
  RETURN_IF_ERROR(spawned);
  RETURN_IF_ERROR(AwaitLabProcess(started, offset));
  out << name << " restarted (pid " << started.identity.pid << ")\n";
  if (recut) return SignalRelay(workdir, started.plant, /*cut=*/true, out);
  return Status::Ok();
}

Status LabCut(const fs::path& workdir, const std::string& plant, std::ostream& out) {
  return SignalRelay(workdir, plant, /*cut=*/true, out);
}

Status LabReconnect(const fs::path& workdir, const std::string& plant, std::ostream& out) {
  return SignalRelay(workdir, plant, /*cut=*/false, out);
}

StatusOr<ExportResult> LabExport(const fs::path& workdir, std::ostream& out) {
  ASSIGN_OR_RETURN(LabState state, ReadLabState(workdir));
  LabTools tools(state.bin_dir, state.keylinectl_env);
  ASSIGN_OR_RETURN(json request, tools.KeylinectlJson({"verification", "request", "--oem", state.oem}));
  ExportResult result;
  result.verification_id = request.at("verification_id");
  out << "verification " << result.verification_id << " requested for " << state.oem << std::endl;
  const auto deadline = Clock::now() + 60s;
  while (true) {
    ASSIGN_OR_RETURN(json status, tools.KeylinectlJson({"verification", "status", result.verification_id}));
    if (status.at("complete").get<bool>()) break;
    if (Clock::now() > deadline) {
      std::string pending;
      for (const auto& p : status.at("pending")) {
        const std::string plant = p.get<std::string>();
        const LabPlant* lab_plant = state.FindPlant(plant);
        pending += (pending.empty() ? "" : ", ") + plant +
                   (lab_plant != nullptr && lab_plant->cut ? " (cut: keyline-lab reconnect)" : "");
      }
      return DeadlineExceededError("verification " + result.verification_id + " still waits for " + pending +
                                   " after 60 s");
    }
    std::this_thread::sleep_for(200ms);
  }
  result.file = state.workdir / "verification.jsonl";
  RETURN_IF_ERROR(tools.KeylinectlJson({"verification", "export", result.verification_id, "--out", result.file.string()})
                      .status());
  std::ifstream in(result.file);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) ++result.lines;
  }
  out << "wrote " << result.file.string() << " (" << result.lines << " lines: injected slots and ECU certificates) and "
      << result.file.string() << ".sig" << std::endl;
  return result;
}

Status LabDown(const fs::path& workdir, std::ostream& out) {
  return UpdateLabState(workdir, [&](LabState& state) -> Status {
    std::vector<std::pair<std::string, ProcessIdentity>> running;
    std::vector<std::string> not_running;
    for (auto it = state.processes.rbegin(); it != state.processes.rend(); ++it) {
      if (IsRunning(it->identity)) {
        running.emplace_back(it->name, it->identity);
      } else {
        not_running.push_back(it->name);
      }
    }
    const std::vector<std::string> killed = StopProcesses(running, 10s);

    out << "stopped " << running.size() << " process(es)";
    if (!killed.empty()) {
      out << "; had to SIGKILL:";
      for (const auto& k : killed) out << ' ' << k;
    }
    if (!not_running.empty()) {
      out << "; not running:";
      for (const auto& n : not_running) out << ' ' << n;
    }
    out << '\n';
    return Status::Ok();
  });
}

}  // namespace keyline::lab

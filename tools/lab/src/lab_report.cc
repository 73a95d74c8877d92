// keyline-lab status: liveness from lab.json's pids, plant figures from the services' own
// status commands (keyline-pks status --json reads a running PKS's database as a secondary;
// keylinectl status --json asks the KMS).
#include <cstdio>
#include <sstream>

#include "keyline/lab/lab.h"
#include "keyline/lab/lab_state.h"
#include "lab_tools.h"

namespace keyline::lab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

uint64_t Count(const json& j, const char* key) { return j.contains(key) && j[key].is_number() ? j[key].get<uint64_t>() : 0; }

void ReadPks(const LabTools& tools, const LabState& state, const LabProcess& pks, PlantReport& plant) {
  auto status = tools.RunJson("keyline-pks", {"status", "--config", pks.config.string(), "--json"});
  if (!status.ok()) {
    plant.problem = status.status().message();
    return;
  }
  plant.pks_readable = true;
  plant.records_written = Count(*status, "records_written");
  plant.records_queued = Count(*status, "records_queued");
  plant.pks_last_contact = status->value("kms_last_contact", "");
  for (const auto& ca : status->value("issuing_cas", json::array())) plant.issuing_cas.push_back(ca.value("subject", ""));
  for (const auto& b : status->value("certificate_budgets", json::array())) {
    if (b.value("oem", "") == state.oem) plant.certificate_budget = Count(b, "available");
  }
  for (const auto& p : status->value("products", json::array())) {
    if (p.value("product", "") != state.product) continue;
    plant.in_stock = Count(p, "in_stock");
    plant.min_stock = Count(p, "min_stock");
    plant.target_stock = Count(p, "target_stock");
    plant.reserved = Count(p, "reserved");
    plant.requested = Count(p, "requested");
    plant.injected = Count(p, "injected");
    plant.burned = Count(p, "burned");
    plant.certificates = Count(p, "certificates_issued");
  }
}

}  // namespace

StatusOr<LabReport> ReadLabReport(const fs::path& workdir) {
  ASSIGN_OR_RETURN(LabState state, ReadLabState(workdir));
  LabTools tools(state.bin_dir, state.keylinectl_env);
  LabReport report;
  for (const auto& p : state.processes) {
    report.processes.push_back({p.name, p.role, p.plant, p.identity.pid, IsRunning(p.identity)});
  }
  json kms = json::object();
  const LabProcess* kms_process = state.FindProcess("kms");
  if (kms_process != nullptr && IsRunning(kms_process->identity)) {
    auto answer = tools.KeylinectlJson({"status"});
    if (answer.ok()) {
      kms = *answer;
      report.kms_answered = true;
    } else {
      report.kms_problem = answer.status().message();
    }
  } else {
    report.kms_problem = "the KMS is not running";
  }
  for (const auto& lab_plant : state.plants) {
    PlantReport plant;
    plant.plant = lab_plant.plant;
    plant.cut = lab_plant.cut;
    if (const LabProcess* pks = state.FindProcess(lab_plant.pks)) {
      ReadPks(tools, state, *pks, plant);
    } else {
      plant.problem = lab_plant.pks + " was never started (keyline-lab up stopped before it)";
    }
    for (const auto& k : kms.value("plants", json::array())) {
      if (k.value("plant", "") != plant.plant) continue;
      plant.kms_last_contact = k["last_contact"].is_string() ? k["last_contact"].get<std::string>() : "";
      plant.records_at_kms = Count(k, "records_received");
    }
    report.plants.push_back(std::move(plant));
  }
  return report;
}

std::string FormatLabReport(const LabReport& report) {
  std::ostringstream text;
  char line[256];
  std::snprintf(line, sizeof line, "%-14s %-9s %-9s %8s  %s\n", "PROCESS", "ROLE", "PLANT", "PID", "STATE");
  text << line;
  for (const auto& p : report.processes) {
    std::snprintf(line, sizeof line, "%-14s %-9s %-9s %8d  %s\n", p.name.c_str(), p.role.c_str(), p.plant.c_str(),
                  p.pid, p.running ? "running" : "NOT RUNNING");
    text << line;
  }
  text << '\n';
  std::snprintf(line, sizeof line, "%-9s %-9s %16s %9s %9s %7s %6s %7s %8s %7s  %-21s %s\n", "PLANT", "KMS LINK",
                "STOCK (MIN/TGT)", "RESERVED", "INJECTED", "BURNED", "CERTS", "BUDGET", "QUEUED", "AT KMS",
                "PKS LAST CONTACT", "KMS LAST CONTACT");
  text << line;
  for (const auto& p : report.plants) {
    if (!p.pks_readable) {
      text << p.plant << "  " << p.problem << '\n';
      continue;
    }
    const std::string stock = std::to_string(p.in_stock) + " (" + std::to_string(p.min_stock) + "/" +
                              std::to_string(p.target_stock) + ")" + (p.in_stock < p.min_stock ? "!" : "");
    std::snprintf(line, sizeof line, "%-9s %-9s %16s %9llu %9llu %7llu %6llu %7llu %8llu %7s  %-21s %s\n",
                  p.plant.c_str(), p.cut ? "CUT" : "up", stock.c_str(), static_cast<unsigned long long>(p.reserved),
                  static_cast<unsigned long long>(p.injected), static_cast<unsigned long long>(p.burned),
                  static_cast<unsigned long long>(p.certificates),
                  static_cast<unsigned long long>(p.certificate_budget),
                  static_cast<unsigned long long>(p.records_queued),
                  report.kms_answered ? std::to_string(p.records_at_kms).c_str() : "?",
                  p.pks_last_contact.empty() ? "never" : p.pks_last_contact.c_str(),
                  p.kms_last_contact.empty() ? (report.kms_answered ? "never" : "?") : p.kms_last_contact.c_str());
    text << line;
  }
  text << "(STOCK ! = below the minimum; CERTS = ECU certificates issued; BUDGET = certificates it may still "
          "issue; QUEUED = records not yet acknowledged by the KMS)\n";
  if (!report.kms_answered) text << "KMS: " << report.kms_problem << '\n';
  return text.str();
}

std::string LabReportJson(const LabReport& report) {
  json processes = json::array();
  for (const auto& p : report.processes) {
    processes.push_back({{"name", p.name}, {"role", p.role}, {"plant", p.plant}, {"pid", p.pid}, {"running", p.running}});
  }
  json plants = json::array();
  for (const auto& p : report.plants) {
    json entry = {{"plant", p.plant}, {"cut", p.cut}, {"pks_readable", p.pks_readable}};
    if (!p.pks_readable) {
      entry["problem"] = p.problem;
    } else {
      entry.update({{"in_stock", p.in_stock},
                    {"min_stock", p.min_stock},
                    {"target_stock", p.target_stock},
                    {"reserved", p.reserved},
                    {"requested", p.requested},
                    {"injected", p.injected},
                    {"burned", p.burned},
                    {"certificates_issued", p.certificates},
                    {"certificate_budget", p.certificate_budget},
                    {"records_written", p.records_written},
                    {"records_queued", p.records_queued},
                    {"pks_last_contact", p.pks_last_contact},
                    {"issuing_cas", p.issuing_cas}});
    }
    entry["records_at_kms"] = report.kms_answered ? json(p.records_at_kms) : json(nullptr);
    entry["kms_last_contact"] = p.kms_last_contact.empty() ? json(nullptr) : json(p.kms_last_contact);
    plants.push_back(std::move(entry));
  }
  json out = {{"processes", processes}, {"plants", plants}, {"kms_answered", report.kms_answered}};
  if (!report.kms_answered) out["kms_problem"] = report.kms_problem;
  return out.dump();
}

}  // namespace keyline::lab

// keyline-lab's commands over a lab directory (docs/lab.md). Every command except Up starts
// from DIR/lab.json, so it works on a lab that another shell started. Progress and results go
// to `out`; a failure is a Status whose message names the process, command or plant at fault.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/lab/lab_layout.h"

namespace keyline::lab {

// Generates keys and configs, starts the KMS, a relay, a PKS and an ECU simulator per plant and
// an injector per station, registers them with keylinectl, imports an OEM batch and waits until
// every plant holds its minimum stock. On failure it stops what it started and says where the
// logs are.
[[nodiscard]] Status LabUp(const LabOptions& options, std::ostream& out);

struct ProvisionedEcu {
  std::string ecu_uid;  // 30 hex digits
  std::string plant;
  std::string station;
  std::string outcome;  // "provisioned", or the error's code (OUT_OF_STOCK, TIMEOUT, ...)
  std::string message;
  bool certified = false;  // the product's certificate slot ended with a confirmed certificate
};

struct ProvisionSummary {
  uint64_t provisioned = 0;
  uint64_t failed = 0;
  std::vector<ProvisionedEcu> ecus;  // in the order they were assigned
};

// Provisions `ecus` new ECUs (fresh random UIDs) through the injectors of `plant` (all plants
// when empty), round-robin over the stations, the stations working concurrently, one ECU at a
// time each. Each result is printed to `out` as it comes.
[[nodiscard]] StatusOr<ProvisionSummary> LabProvision(const std::filesystem::path& workdir, int ecus,
                                                      const std::string& plant, std::ostream& out);
// {"provisioned": n, "failed": n, "ecus": [{"ecu_uid", "plant", "station", "outcome"}, ...]}
std::string ProvisionSummaryJson(const ProvisionSummary& summary);

// Starts process NAME of lab.json again with the same argv, directory and environment, waits
// until it serves, and records its new pid. A relay of a cut plant is cut again.
[[nodiscard]] Status LabRestart(const std::filesystem::path& workdir, const std::string& name, std::ostream& out);

// Cuts a plant's KMS link at its relay (connections dropped, new ones refused), or restores it.
[[nodiscard]] Status LabCut(const std::filesystem::path& workdir, const std::string& plant, std::ostream& out);
[[nodiscard]] Status LabReconnect(const std::filesystem::path& workdir, const std::string& plant, std::ostream& out);

struct ExportResult {
  std::string verification_id;
  std::filesystem::path file;  // DIR/verification.jsonl, with .sig beside it
  uint64_t lines = 0;          // injected slots in the file
};

// Requests a verification file for the lab's OEM, waits until no plant is pending, exports it.
[[nodiscard]] StatusOr<ExportResult> LabExport(const std::filesystem::path& workdir, std::ostream& out);

struct ProcessReport {
  std::string name;
  std::string role;
  std::string plant;
  int pid = 0;
  bool running = false;
};

struct PlantReport {
  std::string plant;
  bool cut = false;
  bool pks_readable = false;     // keyline-pks status answered
  std::string problem;           // why not, when it did not
  uint64_t in_stock = 0;         // the lab's product at this plant
  uint64_t min_stock = 0;
  uint64_t target_stock = 0;
  uint64_t reserved = 0;
  uint64_t requested = 0;        // asked of the KMS, not yet received
  uint64_t injected = 0;
  uint64_t burned = 0;
  uint64_t certificates = 0;     // ECU certificates the plant's issuing CA signed
  uint64_t certificate_budget = 0;  // certificates it may still issue for the lab's OEM
  uint64_t records_written = 0;  // records ever written by the PKS
  uint64_t records_queued = 0;   // not yet acknowledged by the KMS
  std::string pks_last_contact;  // the PKS's last contact with the KMS ("" never)
  std::string kms_last_contact;  // the KMS's last contact with the plant ("" never/unknown)
  uint64_t records_at_kms = 0;   // records the KMS received from the plant
  std::vector<std::string> issuing_cas;  // subjects of the issuing CAs the plant's config lists
};

struct LabReport {
  std::vector<ProcessReport> processes;
  std::vector<PlantReport> plants;
  bool kms_answered = false;
  std::string kms_problem;
};

// Liveness of every process, and each plant's stock, queue and contacts from
// `keyline-pks status --json` and `keylinectl status --json`.
[[nodiscard]] StatusOr<LabReport> ReadLabReport(const std::filesystem::path& workdir);
std::string FormatLabReport(const LabReport& report);
std::string LabReportJson(const LabReport& report);

// SIGTERM to every process of the lab, a grace period, SIGKILL to the stragglers.
[[nodiscard]] Status LabDown(const std::filesystem::path& workdir, std::ostream& out);

}  // namespace keyline::lab

#include "keyline/lab/demo.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>
#include <thread>
#include <type_traits>

#include "keyline/lab/lab.h"
#include "keyline/lab/lab_state.h"
#include "lab_tools.h"

namespace keyline::lab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kCutPlant[] = "plant-b";
constexpr char kOtherPlant[] = "plant-a";
constexpr int kEcusOnline = 8;        // before the cut, spread over both plants
constexpr int kEcusWhileCut = 8;      // plant B, from its own stock
constexpr int kEcusOtherDuringCut = 4;
constexpr int kSlotsPerEcu = 3;       // the lab product's layout (lab_up.cc)

std::atomic<bool> interrupted{false};
void OnInterrupt(int) { interrupted.store(true); }

// What happened to one plant, for the summary table.
struct PlantTally {
  uint64_t provisioned = 0;
  uint64_t provisioned_while_cut = 0;
  uint64_t certified = 0;  // with a confirmed ECU certificate from the plant's issuing CA
  uint64_t certified_while_cut = 0;
  uint64_t failed = 0;
};

class Demo {
 public:
  Demo(fs::path workdir, std::ostream& out, bool terminal)
      : workdir_(std::move(workdir)), out_(out), terminal_(terminal) {}

  Status Run() {
    Chapter("Starting the lab: a KMS, and per plant a relay to the KMS, a PKS, an ECU simulator and 2 injectors");
    LabOptions options;
    options.workdir = workdir_;
    options.key_sets = 500;
    RETURN_IF_ERROR(LabUp(options, out_));
    up_ = true;
    ASSIGN_OR_RETURN(state_, ReadLabState(workdir_));

    Chapter("Provisioning " + std::to_string(kEcusOnline) + " ECUs in both plants, every link up");
    RETURN_IF_ERROR(Provision(kEcusOnline, "", false));
    ASSIGN_OR_RETURN(LabReport before_cut, WaitUntilRecordsDelivered());

    Chapter(std::string("Cutting ") + kCutPlant + " off from the KMS (its relay drops the link and refuses it)");
    RETURN_IF_ERROR(Indented([&](std::ostream& o) { return LabCut(workdir_, kCutPlant, o); }));

    Chapter(std::string(kCutPlant) + " keeps provisioning from its local stock; " + kOtherPlant + " is unaffected");
    RETURN_IF_ERROR(Provision(kEcusWhileCut, kCutPlant, true));
    RETURN_IF_ERROR(Provision(kEcusOtherDuringCut, kOtherPlant, false));
    ASSIGN_OR_RETURN(LabReport during_cut, Report());
    RETURN_IF_ERROR(ShowCutPlant(before_cut, during_cut));

    Chapter(std::string("Reconnecting ") + kCutPlant + ": its queued records drain to the KMS and its stock refills");
    RETURN_IF_ERROR(Indented([&](std::ostream& o) { return LabReconnect(workdir_, kCutPlant, o); }));
    RETURN_IF_ERROR(WatchRecovery());

    Chapter("The OEM's verification file: request, export, check against the OEM's own keys");
    ASSIGN_OR_RETURN(ExportResult exported, Indented([&](std::ostream& o) { return LabExport(workdir_, o); }));
    RETURN_IF_ERROR(CheckVerificationFile(exported));
    ASSIGN_OR_RETURN(LabReport final_report, Report());

    Chapter("Stopping the lab");
    RETURN_IF_ERROR(Indented([&](std::ostream& o) { return LabDown(workdir_, o); }));
    up_ = false;
    PrintSummary(final_report);
    return Status::Ok();
  }

  // After a failure: the lab is stopped, its files stay.
  void StopAfterFailure() {
    if (!up_) return;
    std::ostringstream ignored;
    LabDown(workdir_, ignored).IgnoreError();  // the first failure is the one to report
    out_ << "(the lab was stopped; its logs are in " << (workdir_ / "logs").string() << ")\n";
  }

 private:
  // Runs a lab command, printing what it says indented under the chapter's title.
  template <typename F>
  std::invoke_result_t<F, std::ostream&> Indented(F command) {
    std::ostringstream said;
    auto result = command(said);
    std::istringstream lines(said.str());
    for (std::string line; std::getline(lines, line);) out_ << "  " << line << '\n';
    out_.flush();
    return result;
  }

  std::string Bold(const std::string& text) const { return terminal_ ? "\033[1m" + text + "\033[0m" : text; }

  // Seconds since the demo began; padded to line up in the margin.
  std::string Elapsed(bool padded = true) const {
    char text[16];
    std::snprintf(text, sizeof text, padded ? "%5.1f s" : "%.1f s",
                  std::chrono::duration<double>(Clock::now() - started_).count());
    return text;
  }

  void Chapter(const std::string& title) {
    ++chapter_;
    out_ << '\n' << Bold("[" + Elapsed() + "] " + std::to_string(chapter_) + "/7  " + title) << std::endl;
  }

  Status Interrupted() const {
    return interrupted.load() ? AbortedError("interrupted") : Status::Ok();
  }

  Status Provision(int ecus, const std::string& plant, bool while_cut) {
    RETURN_IF_ERROR(Interrupted());
    ASSIGN_OR_RETURN(ProvisionSummary summary, LabProvision(workdir_, ecus, plant, out_));
    for (const auto& ecu : summary.ecus) {
      PlantTally& tally = tallies_[ecu.plant];
      if (ecu.outcome == "provisioned") {
        ++tally.provisioned;
        if (while_cut) ++tally.provisioned_while_cut;
        if (ecu.certified) ++tally.certified;
        if (ecu.certified && while_cut) ++tally.certified_while_cut;
      } else {
        ++tally.failed;
      }
    }
    if (summary.failed > 0) {
      for (const auto& ecu : summary.ecus) {
        if (ecu.outcome != "provisioned") {
          return FailedPreconditionError(std::to_string(summary.failed) + " of " + std::to_string(ecus) +
                                         " ECUs were not provisioned; the first: " + ecu.ecu_uid + " at " +
                                         ecu.station + ": " + ecu.outcome + " " + ecu.message);
        }
      }
    }
    out_ << "  " << summary.provisioned << " ECUs provisioned" << std::endl;
    return Interrupted();
  }

  StatusOr<LabReport> Report() const {
    ASSIGN_OR_RETURN(LabReport report, ReadLabReport(workdir_));
    for (const auto& p : report.plants) {
      if (!p.pks_readable) return FailedPreconditionError(p.plant + ": " + p.problem);
    }
    return report;
  }

  static const PlantReport& Plant(const LabReport& report, const std::string& plant) {
    for (const auto& p : report.plants) {
      if (p.plant == plant) return p;
    }
    static const PlantReport none;
    return none;
  }

  Status ShowCutPlant(const LabReport& before, const LabReport& during) {
    const PlantReport& b = Plant(during, kCutPlant);
    const PlantReport& b_before = Plant(before, kCutPlant);
    out_ << "  " << kCutPlant << ": " << b.records_queued << " records queued for the KMS, " << b.in_stock
         << " key sets in stock (minimum " << b.min_stock << ")";
    if (b.requested > 0) out_ << ", a request for " << b.requested << " more waiting for the link";
    out_ << "\n  the KMS has " << b.records_at_kms << " records from " << kCutPlant << " (as before the cut: "
         << b_before.records_at_kms << ")\n";
    const PlantReport& a = Plant(during, kOtherPlant);
    out_ << "  " << kOtherPlant << ": " << a.records_queued << " records queued, " << a.in_stock << " in stock\n";
    if (b.records_queued < static_cast<uint64_t>(kEcusWhileCut)) {
      return FailedPreconditionError(std::string(kCutPlant) + " was cut off, yet only " +
                                     std::to_string(b.records_queued) + " of its " + std::to_string(kEcusWhileCut) +
                                     " new records are queued");
    }
    return Status::Ok();
  }

  // With every link up, each plant's records reach the KMS within moments: waits for that, so
  // that the cut starts from a clean slate.
  StatusOr<LabReport> WaitUntilRecordsDelivered() {
    const auto deadline = Clock::now() + 20s;
    while (true) {
      RETURN_IF_ERROR(Interrupted());
      ASSIGN_OR_RETURN(LabReport report, Report());
      uint64_t queued = 0;
      for (const auto& p : report.plants) queued += p.records_queued;
      if (queued == 0) {
        for (const auto& p : report.plants) out_ << "  the KMS has " << p.records_at_kms << " records from " << p.plant << '\n';
        return report;
      }
      if (Clock::now() > deadline) {
        return DeadlineExceededError(std::to_string(queued) + " records still queued at the plants after 20 s with every "
                                     "link up; see " + (workdir_ / "logs").string());
      }
      std::this_thread::sleep_for(200ms);
    }
  }

  // Polls until the cut plant's queue is empty and its stock back at the minimum, printing
  // each change.
  Status WatchRecovery() {
    const auto deadline = Clock::now() + 45s;
    std::string last;
    while (true) {
      RETURN_IF_ERROR(Interrupted());
      ASSIGN_OR_RETURN(LabReport report, Report());
      const PlantReport& b = Plant(report, kCutPlant);
      const std::string now = std::to_string(b.records_queued) + " records queued, " + std::to_string(b.in_stock) +
                              " in stock, " + std::to_string(b.records_at_kms) + " records at the KMS";
      if (now != last) {
        out_ << "  [" << Elapsed() << "] " << kCutPlant << ": " << now << std::endl;
        last = now;
      }
      const bool drained = b.records_queued == 0 && b.records_at_kms >= b.records_written;
      if (drained && b.in_stock >= b.min_stock && b.requested == 0) return Status::Ok();
      if (Clock::now() > deadline) {
        return DeadlineExceededError(std::string(kCutPlant) + " did not recover within 45 s of reconnecting: " + now +
                                     "; see " + (workdir_ / "logs").string());
      }
      std::this_thread::sleep_for(250ms);
    }
  }

  Status CheckVerificationFile(const ExportResult& exported) {
    LabTools tools(state_.bin_dir, state_.keylinectl_env);
    ASSIGN_OR_RETURN(ToolResult ran,
                     RunTool({tools.Binary("keylinectl").string(), "verification", "check", exported.file.string(),
                              "--oem-secrets", state_.oem_secrets.string(), "--oem-ca",
                              (workdir_ / "oem-ca.pem").string(), "--kms-signing-key", state_.kms_signing_key,
                              "--json"}));
    ASSIGN_OR_RETURN(json check, LastJsonLine(ran.out, "keylinectl verification check"));
    check_ = check;
    uint64_t ecus = 0;
    for (const auto& [plant, tally] : tallies_) ecus += tally.provisioned;
    out_ << "  keylinectl verification check (the OEM's side): signature "
         << (check.value("signature_valid", false) ? "valid" : "INVALID") << ", " << check.value("proven", 0)
         << " of " << check.value("lines", 0) - check.value("certificates", 0) << " proofs match the OEM's keys, "
         << check.value("certificates_valid", 0) << " of " << check.value("certificates", 0)
         << " ECU certificates chain to oem-ca.pem and carry the ECU's confirmation, " << check.value("ecus", 0)
         << " ECUs\n";
    if (ran.exit_code != 0 || !check.value("ok", false)) {
      return FailedPreconditionError("the verification file does not check out: " + ran.out + ran.err);
    }
    if (check.value("ecus", uint64_t{0}) != ecus || check.value("lines", uint64_t{0}) != ecus * (kSlotsPerEcu + 1) ||
        check.value("certificates_valid", uint64_t{0}) != ecus) {
      return FailedPreconditionError("the verification file covers " + std::to_string(check.value("ecus", 0)) +
                                     " ECUs; " + std::to_string(ecus) + " were provisioned");
    }
    return Status::Ok();
  }

  void PrintSummary(const LabReport& report) {
    char line[160];
    out_ << '\n' << Bold("Summary") << '\n';
    std::snprintf(line, sizeof line, "  %-36s %10s %10s %10s\n", "", kOtherPlant, kCutPlant, "total");
    out_ << line;
    auto row = [&](const char* label, uint64_t a, uint64_t b, bool total = true) {
      std::snprintf(line, sizeof line, "  %-36s %10llu %10llu %10s\n", label, static_cast<unsigned long long>(a),
                    static_cast<unsigned long long>(b), total ? std::to_string(a + b).c_str() : "");
      out_ << line;
    };
    const PlantTally& ta = tallies_[kOtherPlant];
    const PlantTally& tb = tallies_[kCutPlant];
    const PlantReport& a = Plant(report, kOtherPlant);
    const PlantReport& b = Plant(report, kCutPlant);
    row("ECUs provisioned", ta.provisioned, tb.provisioned);
    row("  of which while cut off from the KMS", ta.provisioned_while_cut, tb.provisioned_while_cut);
    row("ECU certificates issued and confirmed", ta.certified, tb.certified);
    row("  of which while cut off from the KMS", ta.certified_while_cut, tb.certified_while_cut);
    row("certificates the plant CA signed (PKS)", a.certificates, b.certificates);
    row("ECUs that failed", ta.failed, tb.failed);
    row("records received by the KMS", a.records_at_kms, b.records_at_kms);
    row("records still queued at the plant", a.records_queued, b.records_queued);
    const std::string quota = "stock now (min " + std::to_string(a.min_stock) + ", target " +
                              std::to_string(a.target_stock) + ")";
    row(quota.c_str(), a.in_stock, b.in_stock, false);
    out_ << "  verification file: " << check_.value("lines", 0) << " lines (" << kSlotsPerEcu
         << " slots and a certificate x " << check_.value("ecus", 0) << " ECUs), " << check_.value("proven", 0)
         << " proofs recomputed from the OEM's keys, " << check_.value("certificates_valid", 0)
         << " certificate chains checked up to oem-ca.pem, KMS signature "
         << (check_.value("signature_valid", false) ? "valid" : "INVALID") << '\n';
    out_ << "\nThe demo took " << Elapsed(false) << ". Left in " << workdir_.string() << ":\n"
         << "  oem-secrets.jsonl (the OEM's keys), oem-ca.pem (the OEM CA certificate), verification.jsonl and .sig,\n"
         << "  lab.json, logs/ (every service)\n";
  }

  fs::path workdir_;
  std::ostream& out_;
  bool terminal_;
  Clock::time_point started_ = Clock::now();
  int chapter_ = 0;
  bool up_ = false;
  LabState state_;
  std::map<std::string, PlantTally> tallies_;
  json check_;
};

}  // namespace

Status RunDemo(const fs::path& workdir, std::ostream& out) {
  fs::path dir = workdir;
  if (dir.empty()) {
    std::string pattern = (fs::temp_directory_path() / "keyline-lab-demo-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return InternalError("cannot create a temporary directory");
    dir = pattern;
  }
  dir = fs::absolute(dir);
  out << "Keyline lab demo in " << dir.string() << " (kept afterwards; if interrupted: keyline-lab down --workdir "
      << dir.string() << ")" << std::endl;
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  // Output piped into `head` must not kill the demo half-way and leave its lab running.
  signal(SIGPIPE, SIG_IGN);
  Demo demo(dir, out, &out == &std::cout && isatty(STDOUT_FILENO));
  Status told = demo.Run();
  if (!told.ok()) demo.StopAfterFailure();
  return told;
}

}  // namespace keyline::lab

// keyline-lab up: from an empty directory to a lab whose plants hold stock.
#include <chrono>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <thread>

#include "keyline/broker/curve_keys.h"
#include "keyline/lab/lab.h"
#include "keyline/lab/lab_files.h"
#include "keyline/lab/lab_state.h"
#include "lab_process.h"
#include "lab_tools.h"

namespace keyline::lab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The product's SHE layout: MASTER_ECU_KEY (slot 1) authorised by the transport key (the ECU's
// factory MASTER_ECU_KEY), then KEY_1 (slot 4) and KEY_2 (slot 5) authorised by the new slot 1.
// SLOT:AUTH_SLOT:COUNTER:FLAGS, as keylinectl product add takes them.
const std::vector<std::string> kSlots = {"1:1:1:0", "4:1:1:0", "5:1:1:0"};
// Seconds before a reservation whose result never came is burned.
constexpr char kReservationTimeoutS[] = "60";
// The lab product's ECU certificate slot (docs/certificates.md).
constexpr char kCertificateSlot[] = "identity";

std::string Seconds(Clock::duration d) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(1) << std::chrono::duration<double>(d).count() << " s";
  return text.str();
}

// One run of `up`: the layout it follows, the lab.json it builds, and its progress lines.
class LabBuilder {
 public:
  LabBuilder(LabLayout layout, fs::path bin_dir, std::ostream& out)
      : lab_(std::move(layout)), tools_(bin_dir, {}), out_(out) {
    state_.workdir = lab_.workdir;
    state_.bin_dir = std::move(bin_dir);
    state_.oem = lab_.options.oem;
    state_.product = lab_.options.product;
    state_.transport_key_ref = lab_.transport_key_ref;
    state_.oem_secrets = lab_.oem_secrets;
  }

  Status Build() {
    const auto started = Clock::now();
    out_ << "keyline-lab: starting a lab with " << lab_.plants.size() << " plant(s) x " << lab_.options.stations
         << " station(s) in " << lab_.workdir.string() << '\n';
    RETURN_IF_ERROR(Step("keys and configuration files", [&] { return WriteFiles(); }));
    RETURN_IF_ERROR(Step("KMS started", [&] { return StartKms(); }));
    RETURN_IF_ERROR(Step("OEM " + lab_.options.oem + " (batch key, CA) and product " + lab_.options.product + " registered",
                         [&] { return RegisterCatalog(); }));
    // Stock exists before any plant asks for it: a plant answered short waits a while before
    // asking again.
    RETURN_IF_ERROR(Step("OEM batch of " + std::to_string(lab_.options.key_sets) + " key sets imported",
                         [&] { return ImportBatch(); }));
    for (const auto& plant : lab_.plants) {
      RETURN_IF_ERROR(Step(plant.plant + ": transport key imported, plant and " +
                               std::to_string(plant.stations.size()) + " station(s) registered",
                           [&] { return RegisterPlant(plant); }));
    }
    const bool stations = lab_.options.stations > 0;
    RETURN_IF_ERROR(Step(stations ? "relays, PKSs and ECU simulators started" : "relays and PKSs started (no stations)",
                         [&] { return StartPlants(); }));
    RETURN_IF_ERROR(Step("every plant holds stock", [&] { return WaitForStock(); }));
    RETURN_IF_ERROR(Step("issuing CA of OEM " + lab_.options.oem + " installed at every plant",
                         [&] { return IssuePlantCas(); }));
    RETURN_IF_ERROR(Step("every plant holds an issuing budget (certificates it may issue)",
                         [&] { return WaitForBudget(); }));
    // After the stock: by then each PKS has its configuration, so it admits its stations.
    if (stations) {
      RETURN_IF_ERROR(Step("injectors started and connected to their PKS", [&] { return StartInjectors(); }));
    }
    RETURN_IF_ERROR(WriteKeylinectlEnv());
    PrintSummary(Clock::now() - started);
    return Status::Ok();
  }

  // After a failure: stops what was started, keeps every file for a look.
  Status Abandon(const Status& failure) {
    std::vector<std::pair<std::string, ProcessIdentity>> running;
    for (auto it = state_.processes.rbegin(); it != state_.processes.rend(); ++it) {
      running.emplace_back(it->name, it->identity);
    }
    StopProcesses(running, 5s);
    size_t started = 0;
    for (const auto& p : state_.processes) {
      if (p.identity.pid != 0) ++started;
    }
    std::string message = failure.message();
    if (started > 0) message += "\n(stopped the " + std::to_string(started) + " process(es) it had started";
    message += started > 0 ? "; " : "\n(";
    message += "files and logs are in " + lab_.workdir.string() + "; remove it or use another --workdir to try again)";
    return Status(failure.code(), message);
  }

 private:
  template <typename F>
  Status Step(const std::string& what, F body) {
    const auto started = Clock::now();
    RETURN_IF_ERROR(body());
    out_ << "  " << std::left << std::setw(68) << what << ' ' << Seconds(Clock::now() - started) << std::endl;
    return Status::Ok();
  }

  Status WriteFiles() {
    RETURN_IF_ERROR(CreateLabDirectories(lab_));
    ASSIGN_OR_RETURN(std::string admin_public, CreateCurveKeyFiles(lab_.admin_key, lab_.kms_dir / "admin.key.pub"));
    RETURN_IF_ERROR(WriteTextFile(lab_.kms_config, KmsConfigText(lab_, admin_public),
                                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                      fs::perms::others_read));
    // The KMS creates its HSM master key, signing key and Curve key pair here; the plants need
    // the Curve public key before the KMS runs.
    ASSIGN_OR_RETURN(json keys, tools_.RunJson("keyline-kms", {"keys", "--config", lab_.kms_config.string(), "--json"}));
    const std::string kms_curve = keys.at("curve_key");
    state_.kms_signing_key = keys.at("signing_key");
    RETURN_IF_ERROR(WriteTextFile(lab_.kms_curve_public, kms_curve + "\n",
                                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                      fs::perms::others_read));
    state_.keylinectl_env = {{"KEYLINE_KMS", lab_.kms_admin_endpoint},
                             {"KEYLINE_KMS_CURVE_KEY", kms_curve},
                             {"KEYLINE_ADMIN_KEY", lab_.admin_key.string()}};
    tools_.set_keylinectl_env(state_.keylinectl_env);
    RETURN_IF_ERROR(CreateTransportKey(lab_));
    for (const auto& plant : lab_.plants) RETURN_IF_ERROR(WritePlantFiles(lab_, plant));
    for (const auto& plant : lab_.plants) {
      LabPlant entry{plant.plant, plant.pks, plant.relay, plant.ecu_sim, {}, false};
      for (const auto& st : plant.stations) entry.stations.push_back({st.station, st.injector});
      state_.plants.push_back(std::move(entry));
    }
    return WriteLabState(state_);
  }

  LabProcess Describe(std::string name, std::string role, std::string plant, const std::string& program,
                      std::vector<std::string> args, fs::path cwd, fs::path config, fs::path data_dir,
                      std::string ready_text) {
    LabProcess p;
    p.name = std::move(name);
    p.role = std::move(role);
    p.plant = std::move(plant);
    p.argv = {tools_.Binary(program).string()};
    p.argv.insert(p.argv.end(), args.begin(), args.end());
    p.cwd = std::move(cwd);
    p.env = InheritedEnvironment();
    p.config = std::move(config);
    p.data_dir = std::move(data_dir);
    p.log_file = lab_.LogFile(p.name);
    p.ready_text = std::move(ready_text);
    return p;
  }

  // Starts every process in `wave` and waits until each serves; lab.json records each pid as
  // soon as it exists, so `down` finds it even if `up` goes no further.
  Status StartWave(std::vector<LabProcess> wave) {
    std::vector<std::pair<std::string, uint64_t>> offsets;
    for (auto& p : wave) {
      uint64_t offset = 0;
      state_.processes.push_back(p);
      RETURN_IF_ERROR(SpawnLabProcess(state_.processes.back(), offset));
      offsets.emplace_back(p.name, offset);
      RETURN_IF_ERROR(WriteLabState(state_));
    }
    for (const auto& [name, offset] : offsets) RETURN_IF_ERROR(AwaitLabProcess(*state_.FindProcess(name), offset));
    return Status::Ok();
  }

  Status StartKms() {
    LabProcess kms = Describe("kms", "kms", "", "keyline-kms", {"--config", lab_.kms_config.string()}, lab_.kms_dir,
                              lab_.kms_config, lab_.kms_data_dir, "keyline-kms ready");
    kms.endpoints = {{"link", lab_.kms_link_endpoint}, {"admin", lab_.kms_admin_endpoint}};
    return StartWave({kms});
  }

  Status RegisterCatalog() {
    const auto& o = lab_.options;
    ASSIGN_OR_RETURN(json oem_key,
                     tools_.KeylinectlJson({"oem", "keygen", "--oem", o.oem, "--out", lab_.oem_key.string()}));
    RETURN_IF_ERROR(tools_.Keylinectl({"oem", "add", "--name", o.oem, "--signing-key", oem_key.at("signing_key")}));
    std::vector<std::string> product = {"product", "add", "--name", o.product, "--oem", o.oem};
    for (const auto& slot : kSlots) {
      product.push_back("--slot");
      product.push_back(slot);
    }
    for (const std::string& a : {std::string("--transport-key"), lab_.transport_key_ref, std::string("--min-stock"),
                                 std::to_string(o.min_stock), std::string("--target-stock"),
                                 std::to_string(o.target_stock), std::string("--reservation-timeout"),
                                 std::string(kReservationTimeoutS), std::string("--certificate-slot"),
                                 std::string(kCertificateSlot), std::string("--certificate-organization"), o.oem,
                                 std::string("--certificate-unit"), o.product, std::string("--certificate-eku"),
                                 std::string("clientAuth")}) {
      product.push_back(a);
    }
    RETURN_IF_ERROR(tools_.Keylinectl(product).status());
    return RegisterOemCa();
  }

  // The OEM's CA (the stand-in keeps its key in oem/ca) and its certificate at the KMS; a copy
  // of the certificate in WORKDIR/oem-ca.pem for anyone checking ECU chains independently.
  Status RegisterOemCa() {
    const auto& o = lab_.options;
    RETURN_IF_ERROR(tools_.Keylinectl({"oem", "ca", "generate", "--oem", o.oem, "--dir", lab_.oem_ca_dir.string()}));
    std::error_code ec;
    fs::copy_file(lab_.oem_ca_dir / "oem-ca.pem", lab_.oem_ca_certificate, fs::copy_options::overwrite_existing, ec);
    if (ec) return UnavailableError(lab_.oem_ca_certificate.string() + ": " + ec.message());
    return tools_.Keylinectl({"oem", "ca", "import", "--oem", o.oem, "--cert", lab_.oem_ca_certificate.string()})
        .status();
  }

  // Each plant's HSM makes its issuing key; the OEM CA signs; the KMS ships the certificate.
  Status IssuePlantCas() {
    for (const auto& plant : lab_.plants) {
      RETURN_IF_ERROR(tools_.Keylinectl({"plant", "ca", "issue", "--plant", plant.plant, "--oem", lab_.options.oem,
                                         "--oem-ca", lab_.oem_ca_dir.string(), "--wait", "30"}));
    }
    return Status::Ok();
  }

  Status RegisterPlant(const PlantLayout& plant) {
    const std::string config = plant.pks_config.string();
    RETURN_IF_ERROR(tools_.Run("keyline-pks", {"transport-key", "import", "--config", config, "--name",
                                               lab_.transport_key_ref, "--key-file", lab_.transport_key.string()}));
    ASSIGN_OR_RETURN(json keys, tools_.RunJson("keyline-pks", {"keys", "show", "--config", config, "--json"}));
    RETURN_IF_ERROR(tools_.Keylinectl({"plant", "add", "--plant", plant.plant, "--curve-key",
                                       keys.at("curve_public_key"), "--wrap-key", keys.at("wrap_key"),
                                       "--signing-key", keys.at("signing_key")}));
    for (const auto& st : plant.stations) {
      ASSIGN_OR_RETURN(broker::CurvePublicKey injector_key, broker::LoadCurvePublicKeyFile(st.curve_public));
      RETURN_IF_ERROR(tools_.Keylinectl({"station", "add", "--plant", plant.plant, "--station", st.station,
                                         "--curve-key", broker::CurvePublicKeyToZ85(injector_key)}));
    }
    return tools_.Keylinectl({"sync-policy", "set", "--plant", plant.plant, "--mode", "continuous"}).status();
  }

  Status StartPlants() {
    std::vector<LabProcess> wave;
    for (const auto& plant : lab_.plants) {
      LabProcess relay = Describe(plant.relay, "relay", plant.plant, "keyline-lab",
                                  {"relay", "--listen", plant.relay_endpoint, "--to", lab_.kms_link_endpoint},
                                  plant.dir, "", "", "listening on");
      relay.endpoints = {{"listen", plant.relay_endpoint}, {"to", lab_.kms_link_endpoint}};
      LabProcess pks = Describe(plant.pks, "pks", plant.plant, "keyline-pks", {"--config", plant.pks_config.string()},
                                plant.dir, plant.pks_config, plant.pks_data_dir, "serving stations on");
      pks.endpoints = {{"link", plant.pks_endpoint}, {"kms", plant.relay_endpoint}};
      LabProcess sim = Describe(plant.ecu_sim, "ecu-sim", plant.plant, "keyline-ecu-sim",
                                {"--config", plant.ecu_sim_config.string()}, plant.dir, plant.ecu_sim_config,
                                plant.ecu_sim_data_dir, "listening on");
      sim.endpoints = {{"ecu", plant.ecu_endpoint}};
      wave.push_back(std::move(relay));
      wave.push_back(std::move(pks));
      if (!plant.stations.empty()) wave.push_back(std::move(sim));
    }
    return StartWave(std::move(wave));
  }

  // Starts the injectors and waits until each PKS logs its stations' links as connected: only
  // then can the lab provision at once.
  Status StartInjectors() {
    std::vector<std::pair<const PlantLayout*, uint64_t>> pks_logs;
    for (const auto& plant : lab_.plants) pks_logs.emplace_back(&plant, FileSize(lab_.LogFile(plant.pks)));
    std::vector<LabProcess> wave;
    for (const auto& plant : lab_.plants) {
      for (const auto& st : plant.stations) {
        LabProcess injector = Describe(st.injector, "injector", plant.plant, "keyline-injector",
                                       {"run", "--config", st.config.string()}, plant.dir, st.config, st.data_dir,
                                       "listening on");
        injector.endpoints = {{"eol", st.eol_endpoint}, {"pks", plant.pks_endpoint}, {"ecu", plant.ecu_endpoint}};
        wave.push_back(std::move(injector));
      }
    }
    RETURN_IF_ERROR(StartWave(std::move(wave)));
    for (const auto& [plant, offset] : pks_logs) {
      const LabProcess& pks = *state_.FindProcess(plant->pks);
      for (const auto& st : plant->stations) {
        RETURN_IF_ERROR(WaitForLogLine(pks.name, pks.identity, pks.log_file, offset, "link: " + st.station + " connected",
                                       kReadyTimeout)
                            .WithContext("waiting for " + st.injector + " to connect"));
      }
    }
    return Status::Ok();
  }

  Status ImportBatch() {
    const auto& o = lab_.options;
    RETURN_IF_ERROR(tools_.Keylinectl({"oem", "generate-batch", "--oem", o.oem, "--product", o.product, "--count",
                                       std::to_string(o.key_sets), "--out", lab_.batch_file.string(), "--oem-secrets",
                                       lab_.oem_secrets.string(), "--oem-key", lab_.oem_key.string()}));
    return tools_.Keylinectl({"oem", "import", lab_.batch_file.string()}).status();
  }

  Status WaitForStock() {
    const auto deadline = Clock::now() + 60s;
    for (const auto& plant : lab_.plants) {
      uint64_t in_stock = 0;
      while (true) {
        ASSIGN_OR_RETURN(json status,
                         tools_.RunJson("keyline-pks", {"status", "--config", plant.pks_config.string(), "--json"}));
        in_stock = 0;
        for (const auto& p : status.at("products")) {
          if (p.at("product") == lab_.options.product) in_stock = p.at("in_stock");
        }
        if (in_stock >= lab_.options.min_stock) break;
        if (Clock::now() > deadline) {
          return DeadlineExceededError(plant.plant + " holds " + std::to_string(in_stock) + " key sets of " +
                                       lab_.options.product + " after 60 s (minimum " +
                                       std::to_string(lab_.options.min_stock) + "); see " +
                                       lab_.LogFile(plant.pks).string() + " and " + lab_.LogFile("kms").string());
        }
        std::this_thread::sleep_for(100ms);
      }
    }
    return Status::Ok();
  }

  // Each plant asks the KMS for its issuing budget once its CA arrives; the line needs it
  // before the first ECU with a certificate slot.
  Status WaitForBudget() {
    const auto deadline = Clock::now() + 60s;
    for (const auto& plant : lab_.plants) {
      while (true) {
        ASSIGN_OR_RETURN(json status,
                         tools_.RunJson("keyline-pks", {"status", "--config", plant.pks_config.string(), "--json"}));
        uint64_t available = 0;
        for (const auto& b : status.value("certificate_budgets", json::array())) {
          if (b.at("oem") == lab_.options.oem) available = b.at("available");
        }
        if (available > 0) break;
        if (Clock::now() > deadline) {
          return DeadlineExceededError(plant.plant + " holds no issuing budget for " + lab_.options.oem +
                                       " after 60 s; see " + lab_.LogFile(plant.pks).string() + " and " +
                                       lab_.LogFile("kms").string());
        }
        std::this_thread::sleep_for(100ms);
      }
    }
    return Status::Ok();
  }

  Status WriteKeylinectlEnv() {
    std::string text = "# . this file to run keylinectl against the lab in " + lab_.workdir.string() + "\n";
    for (const auto& [name, value] : state_.keylinectl_env) text += "export " + name + "='" + value + "'\n";
    return WriteTextFile(lab_.keylinectl_env_file, text,
                         fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                             fs::perms::others_read);
  }

  void PrintSummary(Clock::duration took) {
    out_ << "keyline-lab: the lab is up (" << Seconds(took) << ")\n";
    for (const auto& p : state_.processes) {
      out_ << "  " << std::left << std::setw(14) << p.name << " pid " << std::setw(8) << p.identity.pid;
      for (const auto& [role, endpoint] : p.endpoints) out_ << ' ' << role << ' ' << endpoint;
      out_ << '\n';
    }
    out_ << "  state: " << LabFile(lab_.workdir).string() << "   logs: " << lab_.logs_dir.string() << "/\n"
         << "  keylinectl: . " << lab_.keylinectl_env_file.string() << "\n";
  }

  LabLayout lab_;
  LabState state_;
  LabTools tools_;
  std::ostream& out_;
};

}  // namespace

Status LabUp(const LabOptions& options, std::ostream& out) {
  ASSIGN_OR_RETURN(LabLayout layout, PlanLab(options));
  if (fs::exists(LabFile(layout.workdir))) {
    const std::string dir = layout.workdir.string();
    auto existing = ReadLabState(layout.workdir);
    bool running = false;
    if (existing.ok()) {
      for (const auto& p : existing->processes) running = running || IsRunning(p.identity);
    }
    return AlreadyExistsError(dir + " already holds a lab (lab.json)" +
                              (running ? ", running: keyline-lab down --workdir " + dir + " stops it"
                                       : ", stopped: keyline-lab restart --workdir " + dir +
                                             " NAME starts its processes again") +
                              "; use a new --workdir for a new lab");
  }
  fs::path bin_dir = options.bin_dir;
  if (bin_dir.empty()) {
    ASSIGN_OR_RETURN(bin_dir, OwnBinDir());
  }
  std::vector<std::string> programs = {"keyline-kms", "keyline-pks", "keylinectl", "keyline-lab"};
  if (options.stations > 0) {
    programs.push_back("keyline-ecu-sim");
    programs.push_back("keyline-injector");
  }
  RETURN_IF_ERROR(LabTools(bin_dir, {}).CheckBinaries(programs));
  LabBuilder builder(std::move(layout), bin_dir, out);
  Status built = builder.Build();
  if (!built.ok()) return builder.Abandon(built);
  return Status::Ok();
}

}  // namespace keyline::lab

// keyline-lab as a user runs it: the real binary and the real services it starts (KMS, relays,
// PKSs, ECU simulators, injectors) on loopback, driven through its commands only.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "keyline/lab/supervisor.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::lab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

ToolResult Lab(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 120s) {
  std::vector<std::string> argv = {KEYLINE_LAB_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  auto ran = RunTool(argv, {}, {}, timeout);
  BOOST_REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
  return *ran;
}

std::string Slurp(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A lab in a temp dir, brought down (whatever the test did) at scope exit.
struct SmallLab {
  explicit SmallLab(int stations = 1) {
    ToolResult up = Lab({"up", "--workdir", workdir.string(), "--plants", "1", "--stations", std::to_string(stations),
                         "--key-sets", "100"});
    BOOST_REQUIRE_MESSAGE(up.exit_code == 0, up.out + up.err);
  }
  ~SmallLab() { Lab({"down", "--workdir", workdir.string()}); }

  json State() const { return json::parse(Slurp(workdir / "lab.json")); }
  json Process(const std::string& name) const {
    const json state = State();
    for (const auto& p : state["processes"]) {
      if (p["name"] == name) return p;
    }
    return {};
  }
  json Status() const {
    ToolResult status = Lab({"status", "--workdir", workdir.string(), "--json"});
    BOOST_REQUIRE_MESSAGE(status.exit_code == 0, status.err);
    return json::parse(status.out);
  }
  static bool Running(const json& status, const std::string& name) {
    for (const auto& p : status["processes"]) {
      if (p["name"] == name) return p["running"].get<bool>();
    }
    return false;
  }

  keyline::testing::TempDir dir;
  fs::path workdir = dir.path() / "lab";
};

BOOST_AUTO_TEST_SUITE(LabCommands)

BOOST_AUTO_TEST_CASE(UpStartsEveryProcessWithPrivateKeysAndStatusShowsStock) {
  SmallLab lab;
  const json state = lab.State();
  std::vector<std::string> names;
  for (const auto& p : state["processes"]) names.push_back(p["name"]);
  const std::vector<std::string> expected = {"kms", "relay-a", "pks-a", "ecu-sim-a", "injector-a1"};
  BOOST_TEST(names == expected, boost::test_tools::per_element());
  for (const auto& p : state["processes"]) {
    BOOST_TEST(p["pid"].get<int>() > 0);
    BOOST_TEST(fs::exists(p["log_file"].get<std::string>()));
    BOOST_TEST(!p["argv"].empty());
    BOOST_TEST(p["environment"].contains("PATH"));
  }
  BOOST_TEST(lab.Process("pks-a")["endpoints"]["kms"] == lab.Process("relay-a")["endpoints"]["listen"]);

  // Every secret key file is readable by its owner only, and none of its content is in lab.json.
  const std::string lab_json = Slurp(lab.workdir / "lab.json");
  size_t secrets = 0;
  for (const auto& entry : fs::recursive_directory_iterator(lab.workdir)) {
    const std::string name = entry.path().filename().string();
    const bool secret = entry.is_regular_file() && (name.ends_with(".key") || name.ends_with(".curve") ||
                                                    name.ends_with(".oemkey") || name == "oem-secrets.jsonl");
    if (!secret) continue;
    ++secrets;
    struct stat info {};
    BOOST_REQUIRE(stat(entry.path().c_str(), &info) == 0);
    BOOST_TEST((info.st_mode & 0077) == 0u, entry.path().string() << " is readable by group or others");
    std::string content = Slurp(entry.path());
    const auto secret_line = content.find("secret = ");
    if (secret_line != std::string::npos) content = content.substr(secret_line + 9, 40);
    while (!content.empty() && content.back() == '\n') content.pop_back();
    if (content.size() >= 32 && name != "oem-secrets.jsonl") {
      BOOST_TEST(lab_json.find(content) == std::string::npos, entry.path().string() << " leaked into lab.json");
    }
  }
  BOOST_TEST(secrets >= 9u);  // transport, admin, KMS, PKS (2), ECU simulator (2), injector, OEM, OEM CA
  BOOST_TEST(Slurp(lab.workdir / "oem-ca.pem").starts_with("-----BEGIN CERTIFICATE-----"));

  const json status = lab.Status();
  BOOST_TEST(status["kms_answered"] == true);
  for (const auto& name : expected) BOOST_TEST(SmallLab::Running(status, name), name);
  BOOST_REQUIRE(status["plants"].size() == 1u);
  const json& plant = status["plants"][0];
  BOOST_TEST(plant["plant"] == "plant-a");
  BOOST_TEST(plant["in_stock"].get<int>() >= plant["min_stock"].get<int>());
  BOOST_TEST(plant["min_stock"] == 10);
  BOOST_TEST(plant["records_queued"] == 0);
  BOOST_TEST(plant["cut"] == false);
  BOOST_TEST(!plant["kms_last_contact"].is_null());
  // The plant's issuing CA: its key made in the PKS's HSM, certified by the OEM CA, shipped.
  BOOST_TEST(plant["issuing_cas"] == json::array({"acme issuing CA plant-a 1"}));

  ToolResult down = Lab({"down", "--workdir", lab.workdir.string()});
  BOOST_TEST(down.exit_code == 0, down.err);
  BOOST_TEST(down.out.find("stopped 5 process(es)") != std::string::npos, down.out);
  const json after = lab.Status();
  for (const auto& name : expected) BOOST_TEST(!SmallLab::Running(after, name), name);
  BOOST_TEST(after["kms_answered"] == false);
}

BOOST_AUTO_TEST_SUITE_END()

// One lab without stations (KMS, relay, PKS), shared by the cases below, which each leave it
// as they found it: every process running, no plant cut. Starting a lab is what costs time.
struct StationlessLab {
  StationlessLab() { shared = new SmallLab(0); }
  ~StationlessLab() {
    delete shared;
    shared = nullptr;
  }
  static inline SmallLab* shared = nullptr;
};

BOOST_AUTO_TEST_SUITE(LabCommandsOnARunningLab, *boost::unit_test::fixture<StationlessLab>())

BOOST_AUTO_TEST_CASE(SigkilledPksIsRestartedExactlyAsBefore) {
  SmallLab& lab = *StationlessLab::shared;
  const json before = lab.Process("pks-a");
  const ProcessIdentity pks{before["pid"].get<pid_t>(), before["start_ticks"].get<uint64_t>()};
  BOOST_REQUIRE(kill(pks.pid, SIGKILL) == 0);
  for (int i = 0; i < 100 && IsRunning(pks); ++i) std::this_thread::sleep_for(50ms);
  BOOST_TEST(!SmallLab::Running(lab.Status(), "pks-a"));

  ToolResult restart = Lab({"restart", "--workdir", lab.workdir.string(), "pks-a"});
  BOOST_REQUIRE_MESSAGE(restart.exit_code == 0, restart.out + restart.err);
  const json after = lab.Process("pks-a");
  BOOST_TEST(after["pid"] != before["pid"]);
  BOOST_TEST(after["argv"] == before["argv"]);
  BOOST_TEST(after["cwd"] == before["cwd"]);
  BOOST_TEST(after["environment"] == before["environment"]);
  const json status = lab.Status();
  BOOST_TEST(SmallLab::Running(status, "pks-a"));
  BOOST_TEST(status["plants"][0]["in_stock"].get<int>() >= 10);

  ToolResult again = Lab({"restart", "--workdir", lab.workdir.string(), "pks-a"});
  BOOST_TEST(again.exit_code == 1);
  BOOST_TEST(again.err.find("pks-a is running") != std::string::npos, again.err);
}

BOOST_AUTO_TEST_CASE(CutPlantHoldsTheVerificationFileUntilReconnected) {
  SmallLab& lab = *StationlessLab::shared;
  const std::string workdir = lab.workdir.string();
  ToolResult cut = Lab({"cut", "--workdir", workdir, "plant-a"});
  BOOST_REQUIRE_MESSAGE(cut.exit_code == 0, cut.err);
  BOOST_TEST(lab.Status()["plants"][0]["cut"] == true);

  std::atomic<bool> exported{false};
  ToolResult export_result;
  std::thread exporter([&] {
    export_result = Lab({"export", "--workdir", workdir});
    exported = true;
  });
  // The request cannot reach the cut plant, so the file cannot be complete yet.
  std::this_thread::sleep_for(2s);
  BOOST_TEST(!exported.load());
  ToolResult reconnect = Lab({"reconnect", "--workdir", workdir, "plant-a"});
  BOOST_TEST(reconnect.exit_code == 0, reconnect.err);
  exporter.join();
  BOOST_REQUIRE_MESSAGE(export_result.exit_code == 0, export_result.out + export_result.err);
  BOOST_TEST(fs::exists(lab.workdir / "verification.jsonl"));
  BOOST_TEST(fs::file_size(lab.workdir / "verification.jsonl") == 0u);  // nothing injected yet
  BOOST_TEST(Slurp(lab.workdir / "verification.jsonl.sig").size() == 129u);
  BOOST_TEST(lab.Status()["plants"][0]["cut"] == false);
}

BOOST_AUTO_TEST_CASE(RestartedRelayOfACutPlantStaysCut) {
  SmallLab& lab = *StationlessLab::shared;
  const std::string workdir = lab.workdir.string();
  BOOST_REQUIRE(Lab({"cut", "--workdir", workdir, "plant-a"}).exit_code == 0);
  const json relay = lab.Process("relay-a");
  const ProcessIdentity identity{relay["pid"].get<pid_t>(), relay["start_ticks"].get<uint64_t>()};
  BOOST_REQUIRE(kill(identity.pid, SIGKILL) == 0);
  for (int i = 0; i < 100 && IsRunning(identity); ++i) std::this_thread::sleep_for(50ms);

  ToolResult restart = Lab({"restart", "--workdir", workdir, "relay-a"});
  BOOST_REQUIRE_MESSAGE(restart.exit_code == 0, restart.out + restart.err);
  BOOST_TEST(restart.out.find("plant-a: KMS link cut") != std::string::npos, restart.out);
  const std::string log = Slurp(relay["log_file"].get<std::string>());
  // Cut again after the restart's "listening on", not just before the kill.
  const auto refusing = log.rfind("refusing new connections");
  BOOST_TEST((refusing != std::string::npos && refusing > log.rfind("listening on")), log);
  BOOST_TEST(lab.Status()["plants"][0]["cut"] == true);
  BOOST_TEST(Lab({"reconnect", "--workdir", workdir, "plant-a"}).exit_code == 0);
}

BOOST_AUTO_TEST_CASE(UsageErrorsExitTwoAndLabErrorsNameTheProblem) {
  keyline::testing::TempDir dir;
  BOOST_TEST(Lab({"up"}).exit_code == 2);
  BOOST_TEST(Lab({"up", "--workdir", dir.path().string(), "--plants", "0"}).exit_code == 2);
  BOOST_TEST(Lab({"provision", "--workdir", dir.path().string()}).exit_code == 2);  // --ecus missing
  BOOST_TEST(Lab({"frobnicate"}).exit_code == 2);

  ToolResult no_lab = Lab({"status", "--workdir", (dir.path() / "nothing").string()});
  BOOST_TEST(no_lab.exit_code == 1);
  BOOST_TEST(no_lab.err.find("no lab was started") != std::string::npos, no_lab.err);

  SmallLab& lab = *StationlessLab::shared;
  ToolResult unknown = Lab({"cut", "--workdir", lab.workdir.string(), "plant-z"});
  BOOST_TEST(unknown.exit_code == 1);
  BOOST_TEST(unknown.err.find("no plant plant-z in this lab (there are: plant-a)") != std::string::npos, unknown.err);
  ToolResult twice = Lab({"up", "--workdir", lab.workdir.string()});
  BOOST_TEST(twice.exit_code == 1);
  BOOST_TEST(twice.err.find("already holds a lab") != std::string::npos, twice.err);
  ToolResult no_stations = Lab({"provision", "--workdir", lab.workdir.string(), "--ecus", "1"});
  BOOST_TEST(no_stations.exit_code == 1);
  BOOST_TEST(no_stations.err.find("no stations") != std::string::npos, no_stations.err);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::lab

// keyline-kms and keylinectl as real processes: the admin commands end to end (exit statuses,
// refusals, verification round trip, audit), and SIGKILL of the KMS during an import and during
// allocation, then restart: counts conserved, nothing shipped twice.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "keyline/broker/curve_keys.h"
#include "keyline/common/hex.h"
#include "keyline/schemas/build.h"
#include "keyline/testing/temp_dir.h"
#include "plant_sim.h"

extern char** environ;

namespace keyline::kms::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using TestDir = keyline::testing::TempDir;

const std::vector<SlotLoad> kLayout = {{1, 1, 1, 0}, {4, 1, 1, 0x02}, {5, 1, 1, 0x02}};

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  int port = ntohs(address.sin_port);
  close(fd);
  return port;
}

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

template <typename F>
bool WaitFor(F condition, std::chrono::milliseconds limit = 30s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return condition();
}

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// A lab: a KMS process with its config, keylinectl's environment, and helpers to run commands.
struct Lab {
  Lab() {
    link_port = FreePort();
    admin_port = FreePort();
    Result admin = Run(KMS_PATH, {"admin-key", "--out", (dir.path() / "admin.key").string()});
    BOOST_REQUIRE_MESSAGE(admin.exit_code == 0, admin.err);
    admin_public = admin.out.substr(0, 40);
    // The admin key by file (admin_key_files); the lab and compose tests cover admin_keys inline.
    std::ofstream(dir.path() / "admin.pub") << "# keylinectl's key\n" << admin_public << "\n";
    std::ofstream(dir.path() / "kms.toml") << "[kms]\ndata_dir = \"data\"\n"
                                           << "link_bind = \"tcp://127.0.0.1:" << link_port << "\"\n"
                                           << "admin_bind = \"tcp://127.0.0.1:" << admin_port << "\"\n"
                                           << "admin_key_files = [\"admin.pub\"]\n"
                                           << "heartbeat_interval_ms = 100\nheartbeat_timeout_ms = 1000\n"
                                           << "[hsm]\nbackend = \"software\"\nmaster_key_file = \"master.key\"\n"
                                           << "[log]\nlevel = \"warn\"\n";
    Result keys = Run(KMS_PATH, {"keys", "--config", (dir.path() / "kms.toml").string(), "--json"});
    BOOST_REQUIRE_MESSAGE(keys.exit_code == 0, keys.err);
    json k = json::parse(keys.out);
    curve_key = k["curve_key"];
    signing_key = k["signing_key"];
    import_key = k["import_key"];
    Start();
  }
  ~Lab() { Kill(); }

  void Start() {
    std::filesystem::path out = dir.path() / "kms.out";
    std::filesystem::remove(out);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, (dir.path() / "kms.err").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    std::string config = (dir.path() / "kms.toml").string();
    std::vector<char*> argv = {const_cast<char*>(KMS_PATH), const_cast<char*>("--config"), config.data(), nullptr};
    BOOST_REQUIRE(posix_spawn(&pid, KMS_PATH, &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    BOOST_REQUIRE_MESSAGE(WaitFor([&] { return Slurp(out).find("ready") != std::string::npos; }, 120s),
                          "keyline-kms did not start: " << Slurp(dir.path() / "kms.err"));
  }

  void Kill() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
  }

  Result Run(const std::string& program, const std::vector<std::string>& args) {
    std::string command = "'" + program + "'";
    for (const auto& a : args) command += " '" + a + "'";
    const auto out = dir.path() / "cmd.out";
    const auto err = dir.path() / "cmd.err";
    std::string env = "KEYLINE_KMS=tcp://127.0.0.1:" + std::to_string(admin_port) + " KEYLINE_KMS_CURVE_KEY='" +
                      curve_key + "' KEYLINE_ADMIN_KEY='" + (dir.path() / "admin.key").string() + "' ";
    if (curve_key.empty()) env.clear();
    int status = std::system(("cd '" + dir.path().string() + "' && " + env + command + " > '" + out.string() +
                              "' 2> '" + err.string() + "'")
                                 .c_str());
    Result r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = Slurp(out);
    r.err = Slurp(err);
    return r;
  }
  Result Ctl(const std::vector<std::string>& args) { return Run(KEYLINECTL_PATH, args); }

  json Status() {
    Result r = Ctl({"status", "--json"});
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    return json::parse(r.out);
  }
  json Product(const std::string& name) {
    const json status = Status();
    for (const auto& p : status["products"]) {
      if (p["product"] == name) return p;
    }
    return {};
  }

  void Catalog(PlantSim* plant) {
    Result keygen = Ctl({"oem", "keygen", "--oem", "acme", "--json"});
    BOOST_REQUIRE_MESSAGE(keygen.exit_code == 0, keygen.err);
    oem_key = json::parse(keygen.out)["signing_key"];
    Result r = Ctl({"oem", "add", "--name", "acme", "--signing-key", oem_key});
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    r = Ctl({"product", "add", "--name", "bcm", "--oem", "acme", "--slot", "1:1:1:0", "--slot", "4:1:1:2", "--slot",
             "5:1:1:2", "--transport-key", "acme-transport", "--min-stock", "10", "--target-stock", "50",
             "--reservation-timeout", "60"});
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    if (plant != nullptr) {
      r = Ctl({"plant", "add", "--plant", plant->plant(), "--curve-key",
               broker::CurvePublicKeyToZ85(plant->curve().public_key()), "--wrap-key", ToHex(plant->wrap_public().bytes),
               "--signing-key", ToHex(plant->signing_public().bytes)});
      BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    }
  }

  broker::CurvePublicKey KmsCurveKey() { return *broker::CurvePublicKeyFromZ85(curve_key, "kms"); }
  std::string LinkEndpoint() { return "tcp://127.0.0.1:" + std::to_string(link_port); }

  TestDir dir;
  int link_port = 0;
  int admin_port = 0;
  pid_t pid = -1;
  std::string admin_public, curve_key, signing_key, import_key, oem_key;
};

BOOST_AUTO_TEST_SUITE(Process)

BOOST_AUTO_TEST_CASE(AdminCommandsEndToEndWithExitStatuses) {
  Lab lab;
  PlantSim plant(lab.dir.path() / "plant-a", "plant-a");
  lab.Catalog(&plant);

  // A bad admin key file stops the KMS at start with an error naming the setting.
  std::ofstream(lab.dir.path() / "bad.pub") << "not a key\n";
  std::string bad_config = (lab.dir.path() / "bad.toml").string();
  std::ofstream(bad_config) << "[kms]\ndata_dir = \"bad-data\"\nadmin_key_files = [\"bad.pub\"]\n"
                            << "link_bind = \"tcp://127.0.0.1:0\"\nadmin_bind = \"tcp://127.0.0.1:0\"\n"
                            << "[hsm]\nbackend = \"software\"\nmaster_key_file = \"bad-master.key\"\n";
  BOOST_TEST(lab.Run(KMS_PATH, {"check-config", "--config", bad_config}).exit_code == 0);  // read at start
  Result bad_key = lab.Run(KMS_PATH, {"--config", bad_config});
  BOOST_TEST(bad_key.exit_code != 0);
  BOOST_TEST(bad_key.err.find("admin_key_files") != std::string::npos, bad_key.err);

  // Usage errors: exit 2, nothing sent.
  BOOST_TEST(lab.Ctl({"oem", "add", "--name", "x", "--signing-key", "zz"}).exit_code == 2);
  BOOST_TEST(lab.Ctl({"product", "add", "--name", "p", "--oem", "acme", "--slot", "99:1:1:0", "--transport-key", "t",
                      "--min-stock", "1", "--target-stock", "2", "--reservation-timeout", "5"})
                 .exit_code == 2);
  BOOST_TEST(lab.Ctl({"sync-policy", "set", "--plant", "plant-a", "--mode", "sometimes"}).exit_code == 2);
  BOOST_TEST(lab.Ctl({"oem", "add", "--name", "x"}).exit_code == 2);  // missing option
  Result help = lab.Ctl({"verification", "check", "--help"});
  BOOST_TEST(help.exit_code == 0);
  BOOST_TEST(help.out.find("--oem-secrets") != std::string::npos);
  // Refusals: exit 1 with the KMS's reason.
  Result unknown_oem = lab.Ctl({"product", "add", "--name", "p", "--oem", "nobody", "--slot", "1:1:1:0",
                                "--transport-key", "t", "--min-stock", "1", "--target-stock", "2",
                                "--reservation-timeout", "5"});
  BOOST_TEST(unknown_oem.exit_code == 1);
  BOOST_TEST(unknown_oem.err.find("OEM nobody is not registered") != std::string::npos, unknown_oem.err);
  BOOST_TEST(lab.Ctl({"station", "add", "--plant", "plant-z", "--station", "s1", "--curve-key",
                      broker::CurvePublicKeyToZ85(broker::CurveKeyPair::Generate()->public_key())})
                 .exit_code == 1);
  BOOST_TEST(lab.Ctl({"station", "add", "--plant", "plant-a", "--station", "s1", "--curve-key",
                      broker::CurvePublicKeyToZ85(broker::CurveKeyPair::Generate()->public_key())})
                 .exit_code == 0);
  BOOST_TEST(lab.Ctl({"sync-policy", "set", "--plant", "plant-a", "--mode", "interval", "--interval", "60"}).exit_code == 0);

  // An unregistered admin key is refused by the KMS's ZAP handler.
  {
    auto stranger = *broker::CurveKeyPair::Generate();
    BOOST_REQUIRE(stranger.Save(lab.dir.path() / "stranger.key").ok());
    Result r = lab.Ctl({"status", "--admin-key", (lab.dir.path() / "stranger.key").string()});
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(r.err.find("refused this client's Curve key") != std::string::npos, r.err);
  }

  // Batch: generate (asks the KMS for the import key and slots), import twice, refuse a tampered copy.
  Result gen = lab.Ctl({"oem", "generate-batch", "--oem", "acme", "--product", "bcm", "--count", "30", "--out",
                        "batch.klb", "--oem-secrets", "secrets.jsonl"});
  BOOST_REQUIRE_MESSAGE(gen.exit_code == 0, gen.err);
  Result imported = lab.Ctl({"oem", "import", "batch.klb", "--json"});
  BOOST_REQUIRE_MESSAGE(imported.exit_code == 0, imported.err);
  BOOST_TEST(json::parse(imported.out)["added"] == 30);
  Result again = lab.Ctl({"oem", "import", "batch.klb"});
  BOOST_TEST(again.exit_code == 0);
  BOOST_TEST(again.out.find("nothing added") != std::string::npos, again.out);
  {
    std::string bytes = Slurp(lab.dir.path() / "batch.klb");
    auto at = bytes.find("KLP1");
    BOOST_REQUIRE(at != std::string::npos);
    bytes[at + 50] ^= 1;
    std::ofstream(lab.dir.path() / "tampered.klb", std::ios::binary) << bytes;
  }
  Result tampered = lab.Ctl({"oem", "import", "tampered.klb"});
  BOOST_TEST(tampered.exit_code == 1);
  BOOST_TEST(tampered.err.find("signature does not verify") != std::string::npos, tampered.err);
  BOOST_TEST(lab.Product("bcm")["kms_stock"] == 30);

  // Stock to the plant, records back, verification round trip.
  plant.Connect(lab.LinkEndpoint(), lab.KmsCurveKey());
  plant.RequestStock("r1", "bcm", 5);
  BOOST_REQUIRE(WaitFor([&] { return plant.Shipped().size() == 5; }));
  auto shipped = plant.Shipped();
  for (uint64_t i = 0; i < 4; ++i) {
    std::array<uint8_t, 15> uid{};
    uid[0] = 0xEC;
    uid[14] = static_cast<uint8_t>(i);
    plant.Send("records", static_cast<uint16_t>(wire::MessageType::InjectionRecord),
               plant.MakeRecord(i + 1, shipped[i], kLayout, uid, i != 3));
  }
  Result request = lab.Ctl({"verification", "request", "--oem", "acme", "--json"});
  BOOST_REQUIRE_MESSAGE(request.exit_code == 0, request.err);
  const std::string id = json::parse(request.out)["verification_id"];
  BOOST_REQUIRE(WaitFor([&] { return plant.VerificationRequests().size() == 1; }));
  Result pending = lab.Ctl({"verification", "status", id});
  BOOST_TEST(pending.out.find("waits for: plant-a") != std::string::npos, pending.out);
  Result early = lab.Ctl({"verification", "export", id, "--out", "early.jsonl"});
  BOOST_TEST(early.exit_code == 1);
  flatbuffers::FlatBufferBuilder wm;
  wm.Finish(wire::CreateVerificationWatermark(wm, wm.CreateString(id), 4));
  auto wm_bytes = schemas::FinishedBytes(wm);
  plant.Send("records", static_cast<uint16_t>(wire::MessageType::VerificationWatermark), {wm_bytes.begin(), wm_bytes.end()});
  BOOST_REQUIRE(WaitFor([&] { return lab.Ctl({"verification", "status", id}).out.find("complete") != std::string::npos; }));
  Result exported = lab.Ctl({"verification", "export", id, "--out", "verification.jsonl"});
  BOOST_REQUIRE_MESSAGE(exported.exit_code == 0, exported.err);
  BOOST_TEST(std::filesystem::exists(lab.dir.path() / "verification.jsonl.sig"));
  Result check = lab.Ctl({"verification", "check", "verification.jsonl", "--oem-secrets", "secrets.jsonl",
                          "--kms-signing-key", lab.signing_key, "--json"});
  BOOST_REQUIRE_MESSAGE(check.exit_code == 0, check.out + check.err);
  json summary = json::parse(check.out);
  BOOST_TEST(summary["lines"] == 9);  // three injected ECUs, three slots each; the burned one is absent
  BOOST_TEST(summary["proven"] == 9);
  BOOST_TEST(summary["ecus"] == 3);
  BOOST_TEST(summary["signature_valid"] == true);
  // A changed proof: the signature breaks and the M4/M5 no longer match.
  {
    std::string text = Slurp(lab.dir.path() / "verification.jsonl");
    auto at = text.find("\"m5\":\"");
    BOOST_REQUIRE(at != std::string::npos);
    char& c = text[at + 6];
    c = c == '0' ? '1' : '0';
    std::ofstream(lab.dir.path() / "verification.jsonl", std::ios::trunc) << text;
  }
  Result bad = lab.Ctl({"verification", "check", "verification.jsonl", "--oem-secrets", "secrets.jsonl",
                        "--kms-signing-key", lab.signing_key, "--json"});
  BOOST_TEST(bad.exit_code == 1);
  json bad_summary = json::parse(bad.out);
  BOOST_TEST(bad_summary["signature_valid"] == false);
  BOOST_TEST(bad_summary["mismatched"] == 1);

  Result audit = lab.Ctl({"audit", "verify", "--json"});
  BOOST_TEST(audit.exit_code == 0, audit.out + audit.err);
  BOOST_TEST(json::parse(audit.out)["intact"] == true);
  json status = lab.Status();
  BOOST_TEST(status["plants"][0]["records_received"] == 4);
  BOOST_TEST(status["plants"][0]["config_version_queued"] == 3);  // plant add, station add, sync policy
  BOOST_TEST(status["products"][0]["counts_conserved"] == true);
}

BOOST_AUTO_TEST_CASE(KillDuringImportThenRestartImportsEachKeySetOnce) {
  Lab lab;
  lab.Catalog(nullptr);
  Result gen = lab.Ctl({"oem", "generate-batch", "--oem", "acme", "--product", "bcm", "--count", "40000", "--out",
                        "big.klb"});
  BOOST_REQUIRE_MESSAGE(gen.exit_code == 0, gen.err);
  // Import in the background and kill the KMS while key sets are being stored.
  std::thread import([&] { (void)lab.Ctl({"oem", "import", "big.klb"}); });
  bool mid = WaitFor([&] {
    Result r = lab.Ctl({"status", "--json"});
    if (r.exit_code != 0) return false;
    const json status = json::parse(r.out);
    for (const auto& job : status["imports_running"]) {
      if (job["done"].get<uint64_t>() > 0) return true;
    }
    return false;
  }, 120s);
  lab.Kill();
  import.join();
  BOOST_TEST_MESSAGE("killed " << (mid ? "during" : "around") << " the import");
  lab.Start();  // resumes the interrupted import before it serves
  json product = lab.Product("bcm");
  BOOST_TEST(product["kms_stock"] == product["imported"]);
  if (product["imported"] == 0) {
    // Killed before the file was staged: importing it now stores it once.
    Result r = lab.Ctl({"oem", "import", "big.klb"});
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    product = lab.Product("bcm");
  }
  BOOST_TEST(product["imported"] == 40000);
  BOOST_TEST(product["kms_stock"] == 40000);
  Result again = lab.Ctl({"oem", "import", "big.klb"});
  BOOST_TEST(again.out.find("nothing added") != std::string::npos, again.out + again.err);
  BOOST_TEST(lab.Product("bcm")["kms_stock"] == 40000);
  BOOST_TEST(lab.Ctl({"audit", "verify"}).exit_code == 0);
}

BOOST_AUTO_TEST_CASE(KillDuringAllocationThenRestartShipsEachKeySetOnce) {
  Lab lab;
  PlantSim plant(lab.dir.path() / "plant-a", "plant-a");
  lab.Catalog(&plant);
  BOOST_REQUIRE(lab.Ctl({"oem", "generate-batch", "--oem", "acme", "--product", "bcm", "--count", "2000", "--out",
                         "stock.klb"}).exit_code == 0);
  BOOST_REQUIRE(lab.Ctl({"oem", "import", "stock.klb"}).exit_code == 0);
  plant.Connect(lab.LinkEndpoint(), lab.KmsCurveKey());
  for (int i = 0; i < 100; ++i) plant.RequestStock("r" + std::to_string(i), "bcm", 15);
  BOOST_REQUIRE(WaitFor([&] { return plant.shipments() > 0; }));
  lab.Kill();
  const size_t before = plant.shipments();
  lab.Start();
  BOOST_REQUIRE_MESSAGE(WaitFor([&] { return plant.shipments() == 100; }, 120s), "shipments: " << plant.shipments());
  std::set<std::string> ids;
  for (const auto& set : plant.Shipped()) ids.insert(set.key_set_id);
  BOOST_TEST_MESSAGE("killed after " << before << " of 100 shipments");
  BOOST_TEST(plant.Shipped().size() == 1500u);
  BOOST_TEST(ids.size() == 1500u);  // nothing shipped twice
  json product = lab.Product("bcm");
  BOOST_TEST(product["kms_stock"] == 500);
  BOOST_TEST(product["shipped_in_plants"] == 1500);
  BOOST_TEST(product["counts_conserved"] == true);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::kms::testing

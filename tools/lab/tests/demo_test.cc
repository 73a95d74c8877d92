// keyline-lab demo end to end, as a new user runs it: the story in order, the files it leaves,
// and a verification file that the OEM's checker accepts on its own.
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <map>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "keyline/lab/supervisor.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::lab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(DemoTellsTheWholeStoryAndLeavesItsFiles) {
  keyline::testing::TempDir dir;
  const fs::path workdir = dir.path() / "demo";
  auto ran = RunTool({KEYLINE_LAB_PATH, "demo", "--workdir", workdir.string()}, {}, {}, 170s);
  BOOST_REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
  BOOST_TEST_MESSAGE(ran->out);
  BOOST_REQUIRE_MESSAGE(ran->exit_code == 0, ran->out + ran->err);

  // The chapters come in the order of the story.
  size_t at = 0;
  for (const char* chapter : {"1/7", "2/7", "3/7  Cutting plant-b", "4/7", "records queued for the KMS",
                              "5/7  Reconnecting plant-b", "6/7", "keylinectl verification check", "7/7", "Summary"}) {
    const size_t found = ran->out.find(chapter, at);
    BOOST_TEST(found != std::string::npos, "\"" << chapter << "\" missing or out of order");
    if (found != std::string::npos) at = found;
  }

  // Every ECU also got a certificate from its plant's issuing CA, the cut plant's too.
  auto row = [&](const std::string& label) {
    size_t start = ran->out.find("  " + label, ran->out.find("Summary"));
    if (start == std::string::npos) return std::string();
    return ran->out.substr(start + 2 + label.size(), ran->out.find('\n', start) - start - 2 - label.size());
  };
  auto numbers = [](const std::string& text) {
    std::istringstream in(text);
    std::vector<int> out;
    for (int n; in >> n;) out.push_back(n);
    return out;
  };
  BOOST_TEST(numbers(row("ECU certificates issued and confirmed")) == (std::vector<int>{8, 12, 20}),
             boost::test_tools::per_element());
  const size_t certified = ran->out.find("ECU certificates issued and confirmed");
  const size_t while_cut = ran->out.find("  of which while cut off from the KMS", certified);
  BOOST_REQUIRE(while_cut != std::string::npos);
  BOOST_TEST(numbers(ran->out.substr(while_cut + 37, ran->out.find('\n', while_cut) - while_cut - 37)) ==
                 (std::vector<int>{0, 8, 8}),
             boost::test_tools::per_element());

  for (const char* file : {"oem-secrets.jsonl", "verification.jsonl", "verification.jsonl.sig", "lab.json"}) {
    BOOST_TEST(fs::exists(workdir / file), file);
  }
  std::ifstream lab_file(workdir / "lab.json");
  const json lab = json::parse(lab_file);
  BOOST_TEST(lab["processes"].size() == 11u);  // KMS; per plant relay, PKS, ECU simulator, 2 injectors
  for (const auto& p : lab["processes"]) {
    BOOST_TEST(fs::file_size(p["log_file"].get<std::string>()) > 0u, p["name"]);
    BOOST_TEST(!IsRunning({p["pid"].get<pid_t>(), p["start_ticks"].get<uint64_t>()}), p["name"] << " still runs");
  }

  // 3 slots and a certificate per ECU: 8 ECUs over both plants, then 8 in plant-b while it was
  // cut and 4 in plant-a.
  std::map<std::string, int> lines_per_plant;
  std::ifstream verification(workdir / "verification.jsonl");
  for (std::string line; std::getline(verification, line);) {
    ++lines_per_plant[json::parse(line)["plant"].get<std::string>()];
  }
  BOOST_TEST(lines_per_plant["plant-a"] == 4 * (4 + 4));
  BOOST_TEST(lines_per_plant["plant-b"] == 4 * (4 + 8));

  // The OEM's checker, run again on what the demo left behind, from the files alone.
  const fs::path keylinectl = fs::path(KEYLINE_LAB_PATH).parent_path() / "keylinectl";
  auto check = RunTool({keylinectl.string(), "verification", "check", (workdir / "verification.jsonl").string(),
                        "--oem-secrets", (workdir / "oem-secrets.jsonl").string(), "--oem-ca",
                        (workdir / "oem-ca.pem").string(), "--kms-signing-key",
                        lab["kms_signing_key"].get<std::string>(), "--json"});
  BOOST_REQUIRE(check.ok());
  BOOST_TEST(check->exit_code == 0, check->out + check->err);
  const json summary = json::parse(check->out);
  BOOST_TEST(summary["proven"] == 60);
  BOOST_TEST(summary["certificates_valid"] == 20);
  BOOST_TEST(summary["ecus"] == 20);
  BOOST_TEST(summary["signature_valid"] == true);

  // The certificate checks catch a tampered line: another ECU's UID, a confirmation that does
  // not verify, a chain to another root; and without the OEM CA nothing passes unchecked.
  std::vector<std::string> lines;
  {
    std::ifstream in(workdir / "verification.jsonl");
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  size_t first = 0;
  while (first < lines.size() && !json::parse(lines[first]).contains("certificate")) ++first;
  BOOST_REQUIRE(first < lines.size());
  auto check_with = [&](const std::function<void(json&)>& tamper, const std::string& ca) {
    json entry = json::parse(lines[first]);
    tamper(entry);
    std::ofstream out(workdir / "tampered.jsonl");
    for (size_t i = 0; i < lines.size(); ++i) out << (i == first ? entry.dump() : lines[i]) << '\n';
    out.close();
    fs::copy_file(workdir / "verification.jsonl.sig", workdir / "tampered.jsonl.sig",
                  fs::copy_options::overwrite_existing);
    std::vector<std::string> args = {keylinectl.string(), "verification", "check", (workdir / "tampered.jsonl").string(),
                                     "--oem-secrets", (workdir / "oem-secrets.jsonl").string(), "--kms-signing-key",
                                     lab["kms_signing_key"].get<std::string>(), "--json"};
    if (!ca.empty()) {
      args.push_back("--oem-ca");
      args.push_back(ca);
    }
    auto tampered = RunTool(args);
    BOOST_REQUIRE(tampered.ok());
    BOOST_TEST(tampered->exit_code == 1);
    return json::parse(tampered->out);
  };
  const std::string ca = (workdir / "oem-ca.pem").string();
  auto other_uid = check_with([](json& e) { e["ecu_uid"] = std::string(30, 'a'); }, ca);
  BOOST_TEST(other_uid["certificate_problems"] == 1);
  BOOST_TEST(other_uid["problems"].dump().find("serialNumber") != std::string::npos, other_uid.dump());
  auto bad_confirmation = check_with([](json& e) { e["confirm_challenge"] = std::string(64, '0'); }, ca);
  BOOST_TEST(bad_confirmation["certificate_problems"] == 1);
  BOOST_TEST(bad_confirmation["problems"].dump().find("confirmation does not verify") != std::string::npos,
             bad_confirmation.dump());
  // The plant CA's certificate as the trust anchor: not the OEM's root, no path.
  const std::string plant_ca = json::parse(lines[first])["chain"].get<std::string>();
  std::ofstream(workdir / "not-the-root.pem") << plant_ca;
  auto other_root = check_with([](json&) {}, (workdir / "not-the-root.pem").string());
  BOOST_TEST(other_root["certificate_problems"] == 20);
  auto no_ca = check_with([](json&) {}, "");
  BOOST_TEST(no_ca["certificate_problems"] == 20);
  BOOST_TEST(no_ca["problems"].dump().find("--oem-ca FILE is needed") != std::string::npos, no_ca.dump());
}

}  // namespace
}  // namespace keyline::lab

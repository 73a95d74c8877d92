// The PKS as a real process, killed with SIGKILL at random points while a station provisions
// ECUs and the KMS ships stock; after each kill it is started again. At the end every ECU has
// exactly one key set, no key set went to two ECUs, the counts are conserved, and every
// reported injection reached the KMS exactly once.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "keyline/common/hex.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/envelope_generated.h"
#include "plant_harness.h"

namespace keyline::pks::testing {
namespace {

constexpr char kStation[] = "line1-eol1";

class PksProcess {
 public:
  explicit PksProcess(std::filesystem::path config, std::filesystem::path log)
      : config_(std::move(config)), log_(std::move(log)) {}
  ~PksProcess() { Kill(); }

  void Start() {
    std::error_code ec;
    log_offset_ = std::filesystem::exists(log_) ? std::filesystem::file_size(log_, ec) : 0;
    pid_ = ::fork();
    BOOST_REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      FILE* out = std::freopen(log_.c_str(), "a", stderr);
      (void)out;
      ::execl(KEYLINE_PKS_PATH, "keyline-pks", "--config", config_.c_str(), nullptr);
      ::_exit(127);
    }
  }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  // Stops it as an operator would, once it has started: a SIGTERM that comes before the
  // process has set up its handler ends it by the signal, which says nothing about the PKS.
  void Stop() {
    if (pid_ <= 0) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (LogSinceStart().find("serving stations on") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    // Say how it ended, with the end of its log: a failed stop is otherwise a bare status.
    std::string log = LogSinceStart();
    if (log.size() > 4000) log = log.substr(log.size() - 4000);
    BOOST_ERROR("keyline-pks did not exit 0 on SIGTERM: " +
                (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                   : "signal " + std::to_string(WTERMSIG(status))) +
                "; end of its log:\n" + log);
  }

 private:
  std::filesystem::path config_;
  std::string LogSinceStart() const {
    std::ifstream in(log_);
    in.seekg(static_cast<std::streamoff>(log_offset_));
    return {std::istreambuf_iterator<char>(in), {}};
  }

  std::filesystem::path log_;
  uintmax_t log_offset_ = 0;  // the log's size when the current process started
  pid_t pid_ = -1;
};

bool WaitUntil(const std::function<bool()>& ready, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return ready();
}

BOOST_AUTO_TEST_CASE(CountsAreConservedAcrossSigkills) {
  const uint64_t seed = std::random_device{}();
  BOOST_TEST_MESSAGE("seed " << seed);
  std::mt19937_64 random(seed);
  constexpr uint64_t kEcus = 240;
  constexpr int kKills = 10;

  PlantHarness plant;
  plant.FixStationPort();
  PksProcess pks(plant.config_path(), plant.dir() / "pks.log");
  pks.Start();
  ProductSpec product;
  plant.Configure({product});
  plant.Ship(product.name, 150);
  plant.StartStation(kStation);

  // The station asks for ECUs at a steady pace whatever the PKS is doing (requests wait in
  // its durable outbox), and reports each package once, with the true proof.
  std::atomic<bool> stop{false};
  std::thread requester([&] {
    for (uint64_t n = 1; n <= kEcus && !stop; ++n) {
      plant.SendRequest(kStation, product.name, PlantHarness::Uid(n));
      std::this_thread::sleep_for(10ms);
    }
  });
  std::set<std::string> reported;
  std::mutex reported_mu;
  std::thread responder([&] {
    while (!stop) {
      for (const PackageView& package : plant.PackagesOf(kStation)) {
        if (package.error != 0) continue;
        {
          std::lock_guard lock(reported_mu);
          if (!reported.insert(package.package_id).second) continue;
        }
        // The UID is in the package id's reservation; the harness maps it back from the
        // request order (UID n asked n-th), so read it from the package instead.
        uint64_t n = std::stoull(package.request_id.substr(4));
        plant.Report(kStation, package, PlantHarness::Uid(n));
      }
      std::this_thread::sleep_for(20ms);
    }
  });

  for (int kill = 0; kill < kKills; ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + random() % 400));
    if (kill == 3) plant.Ship(product.name, 120);  // a batch in flight when the kill comes
    pks.Kill();
    std::this_thread::sleep_for(std::chrono::milliseconds(random() % 200));
    pks.Start();
  }
  requester.join();

  // Everything drains: every ECU gets its package, every result is applied and recorded.
  BOOST_REQUIRE_MESSAGE(WaitUntil([&] {
    std::set<std::string> answered;
    for (const auto& p : plant.PackagesOf(kStation)) answered.insert(p.request_id);
    return answered.size() == kEcus;
  }, 60s), "not every ECU got an answer");
  BOOST_REQUIRE_MESSAGE(WaitUntil([&] {
    std::set<std::string> served;
    for (const auto& p : plant.PackagesOf(kStation)) {
      if (p.error == 0) served.insert(p.package_id);
    }
    std::lock_guard lock(reported_mu);
    return reported == served && plant.Records().size() == reported.size();
  }, 60s), "not every reported injection reached the KMS");
  stop = true;
  responder.join();
  pks.Stop();

  // Invariant 1 and 2: one key set per ECU, one ECU per key set, whatever was resent.
  std::map<std::string, std::set<std::string>> ecus_of_key_set;
  std::map<std::string, std::set<std::string>> key_sets_of_ecu;
  size_t refused = 0;
  for (const auto& p : plant.PackagesOf(kStation)) {
    if (p.error != 0) {
      ++refused;
      continue;
    }
    ecus_of_key_set[p.key_set_id].insert(p.request_id);
    key_sets_of_ecu[p.request_id].insert(p.key_set_id);
  }
  for (const auto& [key_set, ecus] : ecus_of_key_set) BOOST_TEST(ecus.size() == 1u, key_set);
  for (const auto& [ecu, key_sets] : key_sets_of_ecu) BOOST_TEST(key_sets.size() == 1u, ecu);

  // Invariant 4: every reported injection is recorded exactly once, with gapless sequences.
  auto records = plant.Records();
  std::set<uint64_t> sequences;
  std::set<std::string> recorded_key_sets;
  for (const auto& r : records) {
    sequences.insert(r.record_sequence);
    recorded_key_sets.insert(r.key_set_id);
    BOOST_TEST(r.injected, r.key_set_id << ": " << r.burn_reason);
    BOOST_TEST(r.signature_valid);
  }
  BOOST_TEST(sequences.size() == records.size());
  BOOST_TEST(recorded_key_sets.size() == records.size());
  if (!sequences.empty()) {
    BOOST_TEST(*sequences.begin() == 1u);
    BOOST_TEST(*sequences.rbegin() == records.size());
  }

  // Invariant 5: shipped = in stock + reserved + injected + burned.
  auto status = ReadPksStatus(plant.config());
  BOOST_REQUIRE_MESSAGE(status.ok(), status.status().ToString());
  const ProductStatus& counts = status->products.at(0);
  BOOST_TEST(counts.in_stock + counts.reserved + counts.injected + counts.burned ==
             plant.shipped());
  BOOST_TEST(counts.injected == records.size());
  BOOST_TEST(counts.reserved == 0u);
  BOOST_TEST_MESSAGE(kKills << " kills: " << counts.injected << " injected, " << refused
                            << " refusals, " << counts.in_stock << " left in stock of "
                            << plant.shipped() << " shipped");
}


// ECU certificates across SIGKILLs: ECUs are certified one after another while the PKS is
// killed at random points (between issuing and recording too). Every ECU slot ends with one
// certificate, whatever was asked again, and every confirmed injection is recorded once, with
// that certificate.
BOOST_AUTO_TEST_CASE(OneCertificatePerEcuSlotAcrossSigkills) {
  const uint64_t seed = std::random_device{}();
  BOOST_TEST_MESSAGE("seed " << seed);
  std::mt19937_64 random(seed);
  constexpr uint64_t kEcus = 40;
  constexpr int kKills = 6;

  PlantHarness plant;
  plant.FixStationPort();
  PksProcess pks(plant.config_path(), plant.dir() / "pks.log");
  pks.Start();
  ProductSpec product;
  product.certificate_slot = true;
  plant.Configure({product});
  plant.Ship(product.name, kEcus);
  plant.StartStation(kStation);
  const std::string root = plant.InstallIssuingCa({product});

  std::atomic<bool> done{false};
  std::map<uint64_t, std::set<std::string>> certificates_of_ecu;  // every certificate received
  std::thread station([&] {
    for (uint64_t n = 1; n <= kEcus; ++n) {
      const hsm::SheUid uid = PlantHarness::Uid(n);
      auto custody = std::move(*hsm::CreateSoftwareCustody({}));
      hsm::KeyHandle key = *custody->GenerateKey(hsm::KeyKind::kEcdsaP256);
      std::optional<PackageView> package;
      while (!package || package->error != 0) package = plant.Request(kStation, product.name, uid, "", 30s);
      hsm::CertificateSubject subject;
      subject.serial_number = ToHex(uid);
      const std::string csr = *hsm::MakeCsr(*custody, key, subject, package->certificate_challenge);
      // Asked twice, as an injector that restarted would: the same certificate both times.
      std::optional<IssuedView> issued;
      for (int ask = 0; ask < 2; ++ask) {
        std::optional<IssuedView> answer;
        while (!answer) answer = plant.RequestCertificate(kStation, *package, uid, csr);
        BOOST_REQUIRE_MESSAGE(answer->error == 0, answer->message);
        certificates_of_ecu[n].insert(answer->certificate);
        issued = answer;
      }
      CertificateReport report;
      report.confirmation =
          *custody->SignEcdsaSha256(key, hsm::CertificateConfirmationMessage(uid, issued->confirm_challenge));
      plant.Report(kStation, *package, uid, report);
    }
    done = true;
  });
  for (int kill = 0; kill < kKills && !done; ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + random() % 400));
    pks.Kill();
    std::this_thread::sleep_for(std::chrono::milliseconds(random() % 200));
    pks.Start();
  }
  station.join();
  BOOST_REQUIRE_MESSAGE(WaitUntil([&] { return plant.Records().size() == kEcus; }, 60s),
                        "not every certified ECU was recorded");
  pks.Stop();

  std::set<std::string> recorded;
  for (const auto& [n, certificates] : certificates_of_ecu) BOOST_TEST(certificates.size() == 1u, n);
  for (const RecordView& r : plant.Records()) {
    BOOST_TEST(r.injected, r.key_set_id << ": " << r.burn_reason);
    BOOST_TEST(!r.certificate.empty());
    BOOST_TEST(recorded.insert(r.certificate).second, "a certificate recorded twice");
    uint64_t n = 0;
    for (const auto& [ecu, certificates] : certificates_of_ecu) {
      if (certificates.count(r.certificate) != 0) n = ecu;
    }
    BOOST_TEST(n != 0u, "a recorded certificate that no ECU received");
    BOOST_TEST(hsm::VerifyChain(r.certificate, std::vector<std::string>{r.certificate_chain}, root,
                                std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()))
                   .ok());
  }
}

}  // namespace
}  // namespace keyline::pks::testing

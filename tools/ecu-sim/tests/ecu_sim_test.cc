// keyline-ecu-sim through the wire: an in-process RpcServer with the EcuSimulator, reached by
// SimulatorEcuLink over CurveZMQ on loopback (port 0), and the real binary for restarts and
// SIGKILL. The SHE specification's vector must come back bit for bit.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/test/unit_test.hpp>

#include "keyline/broker/rpc.h"
#include "keyline/common/hex.h"
#include "durable_file.h"
#include "keyline/ecu_sim/ecu_simulator.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"
#include "keyline/injector/ecu_link.h"

namespace keyline::ecu_sim {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using injector::EcuError;
using injector::EcuUid;

template <size_t N>
std::array<uint8_t, N> Hex(std::string_view hex) {
  std::array<uint8_t, N> out{};
  for (size_t i = 0; i < N; ++i) {
    out[i] = static_cast<uint8_t>(HexDigitValue(hex[2 * i]) * 16 + HexDigitValue(hex[2 * i + 1]));
  }
  return out;
}

// SHE.md's known-answer vector.
const auto kUid = Hex<15>("000000000000000000000000000001");
const auto kM1 = Hex<16>("00000000000000000000000000000141");
const auto kM2 = Hex<32>("2b111e2d93f486566bcbba1d7f7a9797c94643b050fc5d4d7de14cff682203c3");
const auto kM3 = Hex<16>("b9d745e5ace7d41860bc63c2b9f5bb46");
const auto kM4 = Hex<32>("00000000000000000000000000000141b472e8d8727d70d57295e74849a27917");
const auto kM5 = Hex<16>("820d8d95dc11b4668878160cb2a4e23e");
constexpr std::string_view kNewKeyHex = "0f0e0d0c0b0a09080706050403020100";

struct Dir {
  Dir() {
    path = fs::temp_directory_path() / ("ecu-sim-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path / "data");
    std::ofstream(path / "transport.key") << "000102030405060708090a0b0c0d0e0f\n";
    fs::permissions(path / "transport.key", fs::perms::owner_read | fs::perms::owner_write);
    std::ofstream(path / "state.key")
        << "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\n";
    fs::permissions(path / "state.key", fs::perms::owner_read | fs::perms::owner_write);
  }
  ~Dir() { fs::remove_all(path); }
  EcuSimulatorOptions Options() const {
    EcuSimulatorOptions o;
    o.state_file = path / "data" / "ecu-sim.state";
    o.state_key_file = path / "state.key";
    o.transport_key_file = path / "transport.key";
    return o;
  }
  static inline int counter = 0;
  fs::path path;
};

// An in-process simulator served over CurveZMQ, and a SimulatorEcuLink to it.
struct Served {
  explicit Served(const Dir& dir, EcuFaults faults = {}) {
    server_keys = *broker::CurveKeyPair::Generate();
    client_keys = *broker::CurveKeyPair::Generate();
    BOOST_REQUIRE(peers.Add(client_keys.public_key(), "injector-1").ok());
    EcuSimulatorOptions options = dir.Options();
    options.faults = faults;
    auto opened = EcuSimulator::Open(options);
    BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
    sim = std::move(opened).value();
    broker::RpcServer::Options so;
    so.bind_endpoint = "tcp://127.0.0.1:0";
    so.keys = server_keys;
    so.peers = &peers;
    auto started = broker::RpcServer::Start(
        [this](const std::string& peer, std::span<const uint8_t> request) {
          return sim->Handle(peer, request);
        },
        so);
    BOOST_REQUIRE_MESSAGE(started.ok(), started.status().ToString());
    server = std::move(started).value();
    link = Link();
  }
  std::unique_ptr<injector::EcuLink> Link() {
    auto connected =
        injector::ConnectSimulatorEcuLink({server->endpoint(), server_keys.public_key(), client_keys});
    BOOST_REQUIRE(connected.ok());
    return std::move(connected).value();
  }
  std::unique_ptr<broker::RpcClient> RawClient() {
    return *broker::RpcClient::Connect({server->endpoint(), server_keys.public_key(), client_keys});
  }
  broker::PeerRegistry peers;
  broker::CurveKeyPair server_keys, client_keys;
  std::unique_ptr<EcuSimulator> sim;
  std::unique_ptr<broker::RpcServer> server;
  std::unique_ptr<injector::EcuLink> link;
};

injector::EcuLoadResult LoadVector(injector::EcuLink& link, std::chrono::milliseconds timeout = 3s) {
  auto result = link.LoadKey(kUid, kM1, kM2, kM3, timeout);
  BOOST_REQUIRE_MESSAGE(result.ok(), result.status().ToString());
  return *result;
}

uint32_t Key1Counter(const EcuSimulator& sim) {
  for (const auto& row : sim.Ecus()) {
    if (row.uid == kUid) return row.slots[4].loaded ? row.slots[4].counter : 0;
  }
  return 0;
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

BOOST_AUTO_TEST_SUITE(EcuSimTests)

BOOST_AUTO_TEST_CASE(SheSpecVectorComesBackThroughTheWire, *boost::unit_test::label("integration")) {
  Dir dir;
  Served s(dir);
  auto result = LoadVector(*s.link);
  BOOST_TEST(injector::EcuErrorName(result.error) == "NONE");
  BOOST_CHECK(result.m4 == kM4);
  BOOST_CHECK(result.m5 == kM5);
  auto info = s.link->GetInfo(kUid, 3s);
  BOOST_REQUIRE_MESSAGE(info.ok(), info.status().ToString());
  BOOST_REQUIRE(info->size() == 16u);
  BOOST_TEST((*info)[4].loaded);
  BOOST_TEST((*info)[4].counter == 1u);
  BOOST_TEST((*info)[1].loaded);  // factory MASTER_ECU_KEY
  // The same load again: SHE refuses it.
  BOOST_TEST(injector::EcuErrorName(LoadVector(*s.link).error) == "COUNTER_NOT_LARGER");
}

BOOST_AUTO_TEST_CASE(EachFaultModeHasItsOutcome, *boost::unit_test::label("integration")) {
  {
    Dir dir;
    Served s(dir, {.refuse = 1.0});
    BOOST_TEST(injector::EcuErrorName(LoadVector(*s.link).error) == "GENERAL_ERROR");
    BOOST_TEST(Key1Counter(*s.sim) == 0u);
  }
  {
    Dir dir;
    Served s(dir, {.wrong_proof = 1.0});
    auto result = LoadVector(*s.link);
    BOOST_TEST(injector::EcuErrorName(result.error) == "NONE");
    BOOST_CHECK(result.m4 == kM4);
    BOOST_CHECK(result.m5 != kM5);
    BOOST_TEST(Key1Counter(*s.sim) == 1u);
  }
  {
    Dir dir;
    Served s(dir, {.timeout = 1.0});
    auto started = std::chrono::steady_clock::now();
    BOOST_TEST(injector::EcuErrorName(LoadVector(*s.link, 300ms).error) == "TIMEOUT");
    BOOST_CHECK(std::chrono::steady_clock::now() - started >= 300ms);
    BOOST_TEST(Key1Counter(*s.sim) == 0u);
  }
}

BOOST_AUTO_TEST_CASE(PowerLossStoresKeyAndRetryIsCounterNotLarger,
                     *boost::unit_test::label("integration")) {
  Dir dir;
  Served s(dir, {.power_loss = 1.0});
  BOOST_TEST(injector::EcuErrorName(LoadVector(*s.link, 300ms).error) == "NO_ANSWER");
  BOOST_TEST(Key1Counter(*s.sim) == 1u);
  s.sim->SetFaults({}, 1);
  BOOST_TEST(injector::EcuErrorName(LoadVector(*s.link).error) == "COUNTER_NOT_LARGER");
  BOOST_TEST(s.sim->counters().faults_power_loss == 1u);
}

BOOST_AUTO_TEST_CASE(StatePersistsAcrossReopenWithoutKeyBytes, *boost::unit_test::label("unit")) {
  Dir dir;
  {
    Served s(dir);
    BOOST_TEST(injector::EcuErrorName(LoadVector(*s.link).error) == "NONE");
  }
  std::string state = ReadAll(dir.Options().state_file);
  BOOST_REQUIRE(!state.empty());
  std::string raw_key;
  for (size_t i = 0; i < 16; ++i) raw_key.push_back(static_cast<char>(15 - i));
  std::string transport_raw;
  for (size_t i = 0; i < 16; ++i) transport_raw.push_back(static_cast<char>(i));
  BOOST_TEST(state.find(raw_key) == std::string::npos);
  BOOST_TEST(state.find(transport_raw) == std::string::npos);
  BOOST_TEST(state.find(kNewKeyHex) == std::string::npos);
  // Reopened: the key and counter are still there.
  Served again(dir);
  BOOST_TEST(Key1Counter(*again.sim) == 1u);
  BOOST_TEST(injector::EcuErrorName(LoadVector(*again.link).error) == "COUNTER_NOT_LARGER");
  auto rows = ReadEcuState(dir.Options().state_file, dir.Options().state_key_file);
  BOOST_REQUIRE(rows.ok());
  BOOST_TEST(rows->size() == 1u);
}

BOOST_AUTO_TEST_CASE(MalformedAndWrongUidRequestsGetClearErrorsAndServingGoesOn,
                     *boost::unit_test::label("integration")) {
  Dir dir;
  Served s(dir);
  auto raw = s.RawClient();
  std::vector<uint8_t> garbage = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto reply = raw->Call(garbage, 3000);
  BOOST_REQUIRE(!reply.ok());
  BOOST_TEST(reply.status().message().find("EcuRequest") != std::string::npos,
             reply.status().message());
  // Addressed to another ECU than M1 names: that ECU's SHE refuses M3/UID.
  auto other = Hex<15>("0000000000000000000000000000ff");
  auto wrong = s.link->LoadKey(other, kM1, kM2, kM3, 3s);
  BOOST_REQUIRE(wrong.ok());
  BOOST_TEST(injector::EcuErrorName(wrong->error) == "KEY_UPDATE_ERROR");
  // The wildcard UID addresses no single ECU.
  auto wildcard = s.link->LoadKey(EcuUid{}, kM1, kM2, kM3, 3s);
  BOOST_REQUIRE(!wildcard.ok());
  BOOST_TEST(wildcard.status().message().find("EcuRequest.ecu_uid") != std::string::npos,
             wildcard.status().message());
  BOOST_TEST(s.sim->counters().malformed == 2u);
  BOOST_TEST(injector::EcuErrorName(LoadVector(*s.link).error) == "NONE");
}

// An append that fails half-way (here: the file size limit, as a full disk would) is cut off
// again, so the next record does not land behind half a record and the file stays readable.
BOOST_AUTO_TEST_CASE(FailedAppendLeavesNoPartialRecord, *boost::unit_test::label("unit")) {
  Dir dir;
  const fs::path path = dir.path / "data" / "appended";
  auto file = AppendOnlyFile::Rewrite(path, std::vector<uint8_t>{'H', 'E', 'A', 'D'});
  BOOST_REQUIRE_MESSAGE(file.ok(), file.status().ToString());
  const std::vector<uint8_t> record(100, 'r');
  BOOST_REQUIRE(file->Append(record).ok());
  BOOST_REQUIRE(fs::file_size(path) == 104u);

  struct rlimit saved {};
  BOOST_REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 154;  // room for half a record
  BOOST_REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  Status failed = file->Append(record);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  BOOST_TEST(!failed.ok());
  BOOST_TEST(failed.message().find("write failed") != std::string::npos, failed.message());
  BOOST_TEST(fs::file_size(path) == 104u);

  BOOST_REQUIRE(file->Append(record).ok());
  BOOST_TEST(ReadAll(path) == "HEAD" + std::string(200, 'r'));
}

// A certificate slot: the ECU makes one key pair per slot and keeps it (a CSR asked again has
// the same key, over the new challenge), stores only a certificate for that key, confirms with
// it, and after a reopen still has both. The key never reaches the identities file in clear.
BOOST_AUTO_TEST_CASE(CertificateSlotKeepsItsKeyAndConfirmsItsCertificate,
                     *boost::unit_test::label("integration")) {
  Dir dir;
  const std::vector<uint8_t> challenge(32, 0x11), other_challenge(32, 0x22), confirm(32, 0x33);
  auto ca = std::move(*hsm::CreateSoftwareCustody({}));
  auto ca_key = *ca->GenerateKey(hsm::KeyKind::kEcdsaP256);
  hsm::CertificateSubject ca_subject;
  ca_subject.common_name = "test CA";
  const std::string ca_cert = *hsm::SelfSignCa(*ca, ca_key, ca_subject, hsm::ValidForDaysFromNow(30));
  std::string certificate;
  {
    Served s(dir);
    auto csr = s.link->GenerateKeyPair(kUid, "identity", challenge, 3s);
    BOOST_REQUIRE_MESSAGE(csr.ok(), csr.status().ToString());
    BOOST_REQUIRE((csr->error == EcuError::kNone));
    auto checked = hsm::CheckCsr(csr->csr, challenge);
    BOOST_REQUIRE_MESSAGE(checked.ok(), checked.status().ToString());
    BOOST_TEST(checked->subject.serial_number == ToHex(kUid));
    auto again = s.link->GenerateKeyPair(kUid, "identity", other_challenge, 3s);
    BOOST_REQUIRE(again.ok());
    auto rechecked = hsm::CheckCsr(again->csr, other_challenge);
    BOOST_REQUIRE(rechecked.ok());
    BOOST_TEST((rechecked->spki_der == checked->spki_der));

    // A certificate for another key is refused; the ECU's own is stored and confirmed.
    hsm::EndEntityProfile profile;
    profile.subject.serial_number = ToHex(kUid);
    const std::string foreign = *hsm::IssueEndEntity(*ca, ca_key, ca_cert, *ca->GetPublicKeyInfo(ca_key), profile);
    auto mismatch = s.link->StoreCertificate(kUid, "identity", foreign, confirm, 3s);
    BOOST_REQUIRE(mismatch.ok());
    BOOST_TEST((mismatch->error == EcuError::kKeyInvalid));
    certificate = *hsm::IssueEndEntity(*ca, ca_key, ca_cert, checked->spki_der, profile);
    auto stored = s.link->StoreCertificate(kUid, "identity", certificate, confirm, 3s);
    BOOST_REQUIRE_MESSAGE(stored.ok(), stored.status().ToString());
    BOOST_REQUIRE((stored->error == EcuError::kNone));
    BOOST_TEST(hsm::VerifyEcdsaSha256(checked->spki_der, hsm::CertificateConfirmationMessage(kUid, confirm),
                                      stored->signature)
                   .ok());
    // No key pair in that slot: nothing to store.
    auto empty = s.link->StoreCertificate(kUid, "other", certificate, confirm, 3s);
    BOOST_REQUIRE(empty.ok());
    BOOST_TEST((empty->error == EcuError::kKeyInvalid));
    // A bad slot name is a malformed request.
    BOOST_TEST(!s.link->GenerateKeyPair(kUid, "no spaces", challenge, 3s).ok());
  }
  // Reopened: the same key and the stored certificate.
  Served s(dir);
  auto rows = s.sim->Ecus();
  BOOST_REQUIRE(rows.size() == 1u);
  BOOST_TEST(rows[0].certificates.at("identity") == certificate);
  auto csr = s.link->GenerateKeyPair(kUid, "identity", challenge, 3s);
  BOOST_REQUIRE(csr.ok());
  BOOST_TEST((hsm::CheckCsr(csr->csr, challenge)->spki_der == *hsm::PublicKeyInfoOf(certificate)));
  auto state = ReadEcuState(dir.Options().state_file, dir.Options().state_key_file);
  BOOST_REQUIRE(state.ok());
  BOOST_TEST((*state)[0].certificates.at("identity") == certificate);
}

// The real binary: load, SIGKILL, restart on the same data dir, the ECU still holds the key.
BOOST_AUTO_TEST_CASE(SimulatorProcessKeepsStateAcrossSigkill, *boost::unit_test::label("integration")) {
  Dir dir;
  auto server_keys = *broker::CurveKeyPair::Generate();
  auto client_keys = *broker::CurveKeyPair::Generate();
  BOOST_REQUIRE(server_keys.Save(dir.path / "server.curve").ok());
  std::ofstream(dir.path / "client.pub") << broker::CurvePublicKeyToZ85(client_keys.public_key())
                                         << "\n";
  std::ofstream(dir.path / "sim.toml") << "data_dir = \"data\"\n[ecu]\nlisten = \"tcp://127.0.0.1:0\"\n"
                                          "curve_key_file = \"server.curve\"\n"
                                          "transport_key_file = \"transport.key\"\n"
                                          "state_key_file = \"state.key\"\n"
                                          "[[client]]\nid = \"inj\"\ncurve_public_key_file = \"client.pub\"\n";
  auto start = [&](const std::string& out) -> std::pair<pid_t, std::string> {
    pid_t pid = ::fork();
    if (pid == 0) {
      std::string stdout_path = (dir.path / out).string();
      FILE* f = std::freopen(stdout_path.c_str(), "w", stdout);
      (void)f;
      std::string config = (dir.path / "sim.toml").string();
      ::execl(KEYLINE_ECU_SIM_BINARY, "keyline-ecu-sim", "--config", config.c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      std::string text = ReadAll(dir.path / out);
      auto at = text.find("listening on ");
      if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
        return {pid, text.substr(at + 13, text.find('\n', at) - at - 13)};
      }
      std::this_thread::sleep_for(50ms);
    }
    BOOST_FAIL("keyline-ecu-sim did not start");
    return {pid, ""};
  };
  auto [pid, endpoint] = start("run1.out");
  {
    auto link = *injector::ConnectSimulatorEcuLink({endpoint, server_keys.public_key(), client_keys});
    BOOST_TEST(injector::EcuErrorName(LoadVector(*link, 5s).error) == "NONE");
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  auto [pid2, endpoint2] = start("run2.out");
  {
    auto link = *injector::ConnectSimulatorEcuLink({endpoint2, server_keys.public_key(), client_keys});
    auto info = link->GetInfo(kUid, 5s);
    BOOST_REQUIRE_MESSAGE(info.ok(), info.status().ToString());
    BOOST_TEST((*info)[4].loaded);
    BOOST_TEST((*info)[4].counter == 1u);
    BOOST_TEST(injector::EcuErrorName(LoadVector(*link, 5s).error) == "COUNTER_NOT_LARGER");
  }
  ::kill(pid2, SIGTERM);
  int status = 0;
  ::waitpid(pid2, &status, 0);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(ReadAll(dir.Options().state_file).find(kNewKeyHex) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::ecu_sim

// Runs the real keylinectl binary and checks what an engineer sees: the lines, the JSON, the
// exit status and the one-line errors.
#define BOOST_TEST_MODULE keylinectl
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "keyline/broker/curve_keys.h"
#include "keyline/hsm/she_store_seal.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"

namespace {

struct Run {
  int status = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(int fd) {
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) text.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  return text;
}

constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

// Whether `text` is exactly `length` characters of `alphabet` and a newline. (No std::regex:
// GCC 12 at -O1 warns inside it, and the build treats warnings as errors.)
bool IsLineOf(const std::string& text, std::string_view alphabet, size_t length) {
  if (text.size() != length + 1 || text.back() != '\n') return false;
  return text.find_first_not_of(alphabet) == length;
}

Run Keylinectl(std::vector<std::string> args) {
  args.insert(args.begin(), KEYLINECTL_PATH);
  int out_pipe[2];
  int err_pipe[2];
  BOOST_REQUIRE(::pipe(out_pipe) == 0 && ::pipe(err_pipe) == 0);
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  Run run;
  run.out = ReadAll(out_pipe[0]);  // outputs are a few lines: no pipe can fill up
  run.err = ReadAll(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

const std::vector<std::string> kKnownAnswer = {
    "she", "compute", "--auth-key", "000102030405060708090a0b0c0d0e0f",
    "--new-key", "0f0e0d0c0b0a09080706050403020100", "--uid", "000000000000000000000000000001",
    "--id", "4", "--auth-id", "1", "--counter", "1", "--flags", "0"};

std::vector<std::string> With(std::vector<std::string> args, const std::string& option,
                              const std::string& value) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == option) args[i + 1] = value;
  }
  return args;
}

void ExpectUsageError(const Run& run, const std::string& fragment) {
  BOOST_TEST(run.status == 2);
  BOOST_TEST(run.out.empty());
  BOOST_TEST(run.err.find(fragment) != std::string::npos, run.err);
  BOOST_TEST(run.err.rfind("keylinectl: ", 0) == 0u, run.err);
  BOOST_TEST(std::count(run.err.begin(), run.err.end(), '\n') == 1, run.err);
}

BOOST_AUTO_TEST_CASE(ComputePrintsKnownAnswerLines) {
  Run run = Keylinectl(kKnownAnswer);
  BOOST_TEST(run.status == 0, run.err);
  BOOST_TEST(run.out ==
             "M1 = 00000000000000000000000000000141\n"
             "M2 = 2b111e2d93f486566bcbba1d7f7a9797c94643b050fc5d4d7de14cff682203c3\n"
             "M3 = b9d745e5ace7d41860bc63c2b9f5bb46\n"
             "M4 = 00000000000000000000000000000141b472e8d8727d70d57295e74849a27917\n"
             "M5 = 820d8d95dc11b4668878160cb2a4e23e\n");
  BOOST_TEST(run.err.empty());
}

BOOST_AUTO_TEST_CASE(ComputePrintsJson) {
  std::vector<std::string> args = kKnownAnswer;
  args.push_back("--json");
  Run run = Keylinectl(args);
  BOOST_TEST(run.status == 0, run.err);
  BOOST_TEST(run.out ==
             "{\"m1\":\"00000000000000000000000000000141\","
             "\"m2\":\"2b111e2d93f486566bcbba1d7f7a9797c94643b050fc5d4d7de14cff682203c3\","
             "\"m3\":\"b9d745e5ace7d41860bc63c2b9f5bb46\","
             "\"m4\":\"00000000000000000000000000000141b472e8d8727d70d57295e74849a27917\","
             "\"m5\":\"820d8d95dc11b4668878160cb2a4e23e\"}\n");
}

BOOST_AUTO_TEST_CASE(CheckSaysValidWithUidSlotAndCounter) {
  Run run = Keylinectl({"she", "check", "--new-key", "0f0e0d0c0b0a09080706050403020100", "--m4",
                        "00000000000000000000000000000141b472e8d8727d70d57295e74849a27917",
                        "--m5", "820d8d95dc11b4668878160cb2a4e23e"});
  BOOST_TEST(run.status == 0, run.err);
  BOOST_TEST(run.out ==
             "valid: M4/M5 prove that the ECU holds this key\n"
             "UID = 000000000000000000000000000001\n"
             "ID = 4 (KEY_1)\n"
             "AuthID = 1 (MASTER_ECU_KEY)\n"
             "Counter = 1\n");
}

BOOST_AUTO_TEST_CASE(CheckOfWrongKeyExitsOne) {
  Run run = Keylinectl({"she", "check", "--new-key", "000102030405060708090a0b0c0d0e0f", "--m4",
                        "00000000000000000000000000000141b472e8d8727d70d57295e74849a27917",
                        "--m5", "820d8d95dc11b4668878160cb2a4e23e", "--json"});
  BOOST_TEST(run.status == 1);
  BOOST_TEST(run.out ==
             "{\"auth_id\":1,\"id\":4,\"uid\":\"000000000000000000000000000001\","
             "\"valid\":false}\n");
}

BOOST_AUTO_TEST_CASE(BadHexIsOneLineAndExitTwo) {
  Run run = Keylinectl(With(kKnownAnswer, "--new-key", "0f0e0d0c0b0a0908070605040302010g"));
  ExpectUsageError(run, "--new-key: character at position 32 is not a hex digit");
  // The rest of the key is not echoed.
  BOOST_TEST(run.err.find("0f0e0d") == std::string::npos);
  ExpectUsageError(Keylinectl(With(kKnownAnswer, "--uid", "00000000000000000000000000000x")),
                   "--uid:");
}

BOOST_AUTO_TEST_CASE(WrongLengthIsOneLineAndExitTwo) {
  ExpectUsageError(Keylinectl(With(kKnownAnswer, "--auth-key", "0001020304")),
                   "--auth-key: expected 16 bytes (32 hex digits), got 10 hex digits");
  ExpectUsageError(Keylinectl(With(kKnownAnswer, "--uid", "0001")),
                   "--uid: expected 15 bytes (30 hex digits), got 2 bytes");
  ExpectUsageError(
      Keylinectl({"she", "check", "--new-key", "0f0e0d0c0b0a09080706050403020100", "--m4",
                  "0000", "--m5", "820d8d95dc11b4668878160cb2a4e23e"}),
      "--m4: expected 32 bytes");
}

BOOST_AUTO_TEST_CASE(OutOfRangeNumbersAreOneLineAndExitTwo) {
  ExpectUsageError(Keylinectl(With(kKnownAnswer, "--id", "16")), "--id: 16 is out of range (0..15)");
  ExpectUsageError(Keylinectl(With(kKnownAnswer, "--auth-id", "99")), "--auth-id: 99 is out of range");
  ExpectUsageError(Keylinectl(With(kKnownAnswer, "--counter", "268435456")),
                   "--counter: 268435456 is out of range (0..268435455)");
  ExpectUsageError(Keylinectl(With(kKnownAnswer, "--flags", "32")), "--flags: 32 is out of range (0..31)");
  ExpectUsageError(Keylinectl(With(kKnownAnswer, "--counter", "-1")), "--counter: '-1' is not a number");
  ExpectUsageError(Keylinectl(With(kKnownAnswer, "--counter", "99999999999999999999999")),
                   "out of range");
}

BOOST_AUTO_TEST_CASE(CounterAcceptsHexAndTheTopValue) {
  Run run = Keylinectl(With(kKnownAnswer, "--counter", "0xFFFFFFF"));
  BOOST_TEST(run.status == 0, run.err);
}

BOOST_AUTO_TEST_CASE(WildcardUidNeedsTheFlag) {
  auto args = With(kKnownAnswer, "--uid", "000000000000000000000000000000");
  ExpectUsageError(Keylinectl(args), "--allow-wildcard");
  args.push_back("--allow-wildcard");
  Run run = Keylinectl(args);
  BOOST_TEST(run.status == 0, run.err);
  BOOST_TEST(run.out.rfind("M1 = 00000000000000000000000000000041\n", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(MistypedOptionDoesNotEchoTheKey) {
  std::vector<std::string> args = kKnownAnswer;
  args.push_back("--new-kye");
  args.push_back("000102030405060708090a0b0c0d0e0f");
  Run run = Keylinectl(args);
  BOOST_TEST(run.status == 2);
  BOOST_TEST(run.err.find("000102030405060708090a0b0c0d0e0f") == std::string::npos, run.err);
  BOOST_TEST(run.err.find("<32 hex digits>") != std::string::npos, run.err);
}

BOOST_AUTO_TEST_CASE(MissingOptionIsOneLineAndExitTwo) {
  ExpectUsageError(Keylinectl({"she", "compute", "--auth-key", "00"}), "is required");
}

// ---- keys generate: the files the services read -------------------------------------------

namespace fs = std::filesystem;

// A fresh directory per test case, removed afterwards.
struct KeyDir {
  KeyDir() {
    std::string pattern = (fs::temp_directory_path() / "keylinectl-keys-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~KeyDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  fs::path path;
};

unsigned Mode(const std::string& path) {
  struct stat info {};
  BOOST_REQUIRE(::stat(path.c_str(), &info) == 0);
  return info.st_mode & 0777;
}

std::string Contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

BOOST_AUTO_TEST_CASE(CurvePairIsLoadableAndItsPublicFileMatches) {
  KeyDir dir;
  Run run = Keylinectl({"keys", "generate", "curve", "--secret-out", dir / "pks.curve.secret",
                        "--public-out", dir / "pks.curve.pub"});
  BOOST_TEST(run.status == 0, run.err);
  BOOST_TEST(IsLineOf(run.out, kZ85Alphabet, 40),
             run.out);
  BOOST_TEST(Mode(dir / "pks.curve.secret") == 0600u);
  BOOST_TEST(Mode(dir / "pks.curve.pub") == 0644u);
  auto pair = keyline::broker::CurveKeyPair::Load(dir / "pks.curve.secret");
  BOOST_REQUIRE_MESSAGE(pair.ok(), pair.status().message());
  auto pub = keyline::broker::LoadCurvePublicKeyFile(dir / "pks.curve.pub");
  BOOST_REQUIRE_MESSAGE(pub.ok(), pub.status().message());
  BOOST_TEST((*pub == pair->public_key()));
  const std::string z85 = keyline::broker::CurvePublicKeyToZ85(*pub);
  BOOST_TEST(run.out == z85 + "\n");
  BOOST_TEST(Contents(dir / "pks.curve.pub") == "public = " + z85 + "\n");
}

BOOST_AUTO_TEST_CASE(TwoCurvePairsDiffer) {
  KeyDir dir;
  Run a = Keylinectl({"keys", "generate", "curve", "--secret-out", dir / "a"});
  Run b = Keylinectl({"keys", "generate", "curve", "--secret-out", dir / "b"});
  BOOST_TEST(a.status == 0, a.err);
  BOOST_TEST(b.status == 0, b.err);
  BOOST_TEST(a.out != b.out);
}

BOOST_AUTO_TEST_CASE(AnExistingFileIsNeverOverwritten) {
  KeyDir dir;
  BOOST_REQUIRE(Keylinectl({"keys", "generate", "hsm-master", "--out", dir / "master.key"}).status == 0);
  const std::string before = Contents(dir / "master.key");
  Run again = Keylinectl({"keys", "generate", "hsm-master", "--out", dir / "master.key"});
  BOOST_TEST(again.status == 1);
  BOOST_TEST(again.err.find("exists; not overwriting a key file") != std::string::npos, again.err);
  BOOST_TEST((Contents(dir / "master.key") == before));

  // A pair whose public file exists is refused before the secret file is written.
  { std::ofstream(dir / "taken.pub") << "x\n"; }
  Run curve = Keylinectl({"keys", "generate", "curve", "--secret-out", dir / "new.secret",
                          "--public-out", dir / "taken.pub"});
  BOOST_TEST(curve.status == 1);
  BOOST_TEST(!fs::exists(dir / "new.secret"));

  Run hex = Keylinectl({"keys", "generate", "hex", "--bytes", "16", "--out", dir / "taken.pub"});
  BOOST_TEST(hex.status == 1);
  BOOST_TEST(Contents(dir / "taken.pub") == "x\n");
}

BOOST_AUTO_TEST_CASE(HsmMasterKeyOpensTheSoftwareCustody) {
  KeyDir dir;
  Run run = Keylinectl({"keys", "generate", "hsm-master", "--out", dir / "kms.hsm-master.key"});
  BOOST_TEST(run.status == 0, run.err);
  BOOST_TEST(Mode(dir / "kms.hsm-master.key") == 0600u);
  keyline::hsm::SoftwareCustodyOptions options;
  options.master_key_file = dir / "kms.hsm-master.key";
  auto custody = keyline::hsm::CreateSoftwareCustody(options);
  BOOST_REQUIRE_MESSAGE(custody.ok(), custody.status().message());
  // Named keys (a PKS's signing key, the KMS's import key) need the master key.
  auto named = (*custody)->GetOrCreateNamedKey("pks-signing", keyline::hsm::KeyKind::kEd25519);
  BOOST_TEST(named.ok(), named.status().message());
}

BOOST_AUTO_TEST_CASE(HexKeysAreWhatThePksAndTheSimulatorRead) {
  KeyDir dir;
  Run transport = Keylinectl({"keys", "generate", "hex", "--bytes", "16", "--out", dir / "transport.key"});
  Run state = Keylinectl({"keys", "generate", "hex", "--bytes", "32", "--out", dir / "state.key"});
  BOOST_TEST(transport.status == 0, transport.err);
  BOOST_TEST(state.status == 0, state.err);
  BOOST_TEST(Mode(dir / "transport.key") == 0600u);
  BOOST_TEST(Mode(dir / "state.key") == 0600u);
  BOOST_TEST(IsLineOf(Contents(dir / "transport.key"), "0123456789abcdef", 32));
  BOOST_TEST(IsLineOf(Contents(dir / "state.key"), "0123456789abcdef", 64));
  auto sealer = keyline::hsm::SheStoreSealer::LoadKeyFile(dir / "state.key");
  BOOST_TEST(sealer.ok(), sealer.status().message());
  auto she = keyline::hsm::SheTransportKey::LoadFile(dir / "transport.key");
  BOOST_TEST(she.ok(), she.status().message());
  // The output names the file, never the key.
  BOOST_TEST(transport.out.find(Contents(dir / "transport.key").substr(0, 32)) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(KeyGenerationUsageErrorsExitTwo) {
  KeyDir dir;
  ExpectUsageError(Keylinectl({"keys", "generate", "hex", "--bytes", "0", "--out", dir / "k"}), "--bytes");
  ExpectUsageError(Keylinectl({"keys", "generate", "hex", "--bytes", "65", "--out", dir / "k"}), "--bytes");
  ExpectUsageError(Keylinectl({"keys", "generate", "hex", "--out", dir / "k"}), "--bytes is required");
  ExpectUsageError(Keylinectl({"keys", "generate", "hsm-master"}), "--out is required");
  ExpectUsageError(Keylinectl({"keys", "generate", "curve", "--secret-out", dir / "k", "--public-out", dir / "k"}),
                   "--public-out must differ");
  ExpectUsageError(Keylinectl({"keys", "generate"}), "subcommand");
  BOOST_TEST(!fs::exists(dir / "k"));
}

BOOST_AUTO_TEST_CASE(KeyFileInAMissingDirectoryExitsOne) {
  KeyDir dir;
  Run run = Keylinectl({"keys", "generate", "hex", "--bytes", "16", "--out", dir / "no/such/dir/k"});
  BOOST_TEST(run.status == 1);
  BOOST_TEST(run.err.find("does not exist") != std::string::npos, run.err);
}

BOOST_AUTO_TEST_CASE(KeysGenerateHasHelp) {
  Run run = Keylinectl({"keys", "generate", "--help"});
  BOOST_TEST(run.status == 0);
  for (const char* kind : {"curve", "hsm-master", "hex"}) {
    BOOST_TEST(run.out.find(kind) != std::string::npos, run.out);
  }
  Run hex = Keylinectl({"keys", "generate", "hex", "--help"});
  BOOST_TEST(hex.status == 0);
  BOOST_TEST(hex.out.find("--bytes") != std::string::npos, hex.out);
}

// The KMS's Curve public key from a file (how the compose lab's setup service finds it).
BOOST_AUTO_TEST_CASE(KmsCurveKeyCanComeFromAFile) {
  KeyDir dir;
  BOOST_REQUIRE(Keylinectl({"keys", "generate", "curve", "--secret-out", dir / "kms.curve", "--public-out",
                            dir / "kms.curve.pub"})
                    .status == 0);
  // Accepted: the next thing missing is the admin key, so the curve key file was read.
  Run run = Keylinectl({"status", "--kms-curve-key-file", dir / "kms.curve.pub", "--admin-key", dir / "none"});
  BOOST_TEST(run.status == 2);
  BOOST_TEST(run.err.find("--admin-key:") != std::string::npos, run.err);
  Run missing = Keylinectl({"status", "--kms-curve-key-file", dir / "nothing.pub", "--admin-key", dir / "none"});
  BOOST_TEST(missing.status == 2);
  BOOST_TEST(missing.err.find("--kms-curve-key-file:") != std::string::npos, missing.err);
}

// A product's certificate slot is checked before anything reaches the KMS: a usage no ECU
// certificate may carry, a bad slot name, or certificate options without a slot.
BOOST_AUTO_TEST_CASE(ProductCertificateSlotOptionsAreCheckedFirst) {
  const std::vector<std::string> base = {"product", "add", "--name", "bcm", "--oem", "acme", "--slot", "1:1:1:0",
                                         "--transport-key", "tk", "--min-stock", "1", "--target-stock", "2",
                                         "--reservation-timeout", "60"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return Keylinectl(args);
  };
  ExpectUsageError(with({"--certificate-slot", "identity", "--certificate-key-usage", "keyCertSign"}),
                   "key usage \"keyCertSign\" is not one of");
  ExpectUsageError(with({"--certificate-slot", "identity", "--certificate-eku", "codeSigning"}),
                   "extended key usage \"codeSigning\"");
  ExpectUsageError(with({"--certificate-slot", "my slot"}), "certificate slot name \"my slot\"");
  ExpectUsageError(with({"--certificate-slot", "identity", "--certificate-days", "0"}), "--certificate-days");
  ExpectUsageError(with({"--certificate-unit", "BCM"}), "need --certificate-slot");
}

// An issuing budget policy is checked before anything reaches the KMS.
BOOST_AUTO_TEST_CASE(PlantCaBudgetOptionsAreCheckedFirst) {
  auto budget = [](const std::string& min, const std::string& target) {
    return Keylinectl({"plant", "ca", "budget", "--plant", "plant-a", "--oem", "acme", "--min", min, "--target",
                       target});
  };
  ExpectUsageError(budget("300", "200"), "--min must not be above --target");
  ExpectUsageError(budget("many", "200"), "--min");
  ExpectUsageError(budget("1", "2000000"), "--target");
  ExpectUsageError(Keylinectl({"plant", "ca", "budget", "--plant", "plant-a", "--oem", "acme", "--min", "1"}),
                   "--target");
}

// The OEM stand-in's CA: a self-signed P-256 CA certificate whose key stays behind a 0600
// master key file; never overwritten; `plant ca issue` refuses a directory that is not a CA.
BOOST_AUTO_TEST_CASE(OemCaGenerateWritesAVerifiableRootAndKeepsTheKey) {
  KeyDir dir;
  Run run = Keylinectl({"oem", "ca", "generate", "--oem", "acme", "--dir", dir / "ca", "--organization",
                        "Acme Motors", "--json"});
  BOOST_REQUIRE_MESSAGE(run.status == 0, run.err);
  BOOST_TEST(Mode(dir / "ca/oem-ca-master.key") == 0600u);
  const std::string pem = Contents(dir / "ca/oem-ca.pem");
  auto info = keyline::hsm::InspectCertificate(pem);
  BOOST_REQUIRE_MESSAGE(info.ok(), info.status().message());
  BOOST_TEST(info->is_ca);
  BOOST_TEST(info->self_signed);
  BOOST_TEST(info->subject.organization == "Acme Motors");
  BOOST_TEST(info->subject.common_name == "acme root CA");
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  BOOST_TEST(keyline::hsm::VerifyChain(pem, {}, pem, now).ok());

  Run again = Keylinectl({"oem", "ca", "generate", "--oem", "acme", "--dir", dir / "ca"});
  BOOST_TEST(again.status == 1);
  BOOST_TEST(again.err.find("already holds an OEM CA") != std::string::npos, again.err);
  BOOST_TEST(Contents(dir / "ca/oem-ca.pem") == pem);

  // The KMS is never asked when the OEM CA directory is missing or belongs to another OEM.
  Run missing = Keylinectl({"plant", "ca", "issue", "--plant", "plant-a", "--oem", "acme", "--oem-ca",
                            dir / "nothing", "--kms-curve-key", std::string(40, 'a'), "--admin-key", dir / "none"});
  BOOST_TEST(missing.status == 2);
  BOOST_TEST(missing.err.find("oem-ca-master.key does not exist") != std::string::npos, missing.err);
  Run other = Keylinectl({"plant", "ca", "issue", "--plant", "plant-a", "--oem", "zenith", "--oem-ca", dir / "ca",
                          "--kms-curve-key", std::string(40, 'a'), "--admin-key", dir / "none"});
  BOOST_TEST(other.status == 2);
  BOOST_TEST(other.err.find("is not the CA of OEM zenith") != std::string::npos, other.err);
}

}  // namespace

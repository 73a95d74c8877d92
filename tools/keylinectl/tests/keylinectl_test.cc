// Runs the real keylinectl binary and checks what an engineer sees: the lines, the JSON, the
// exit status and the one-line errors.
#define BOOST_TEST_MODULE keylinectl
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

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

}  // namespace

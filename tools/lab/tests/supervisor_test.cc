// The supervisor with small real programs: how a lab process that cannot start, or dies while
// starting, is reported, and what identifies a process.
#include <signal.h>
#include <unistd.h>

#include <thread>

#include <boost/test/unit_test.hpp>

#include "keyline/lab/supervisor.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::lab {
namespace {

using namespace std::chrono_literals;

ProcessSpec Shell(const keyline::testing::TempDir& dir, const std::string& script) {
  return {"script", {"/bin/sh", "-c", script}, dir.path(), InheritedEnvironment(), dir.path() / "script.log"};
}

BOOST_AUTO_TEST_SUITE(Supervisor)

BOOST_AUTO_TEST_CASE(MissingProgramIsReportedByName) {
  keyline::testing::TempDir dir;
  ProcessSpec spec = Shell(dir, "");
  spec.argv = {(dir.path() / "no-such-program").string()};
  auto started = StartProcess(spec);
  BOOST_REQUIRE(!started.ok());
  BOOST_TEST(started.status().message().find("no-such-program") != std::string::npos, started.status().message());
  BOOST_TEST(started.status().message().find("No such file") != std::string::npos, started.status().message());
}

BOOST_AUTO_TEST_CASE(ProcessThatDiesAtStartIsReportedWithTheEndOfItsLog) {
  keyline::testing::TempDir dir;
  ProcessSpec spec = Shell(dir, "echo starting; echo 'pks.toml: [plant] id is missing' >&2; exit 2");
  auto started = StartProcess(spec);
  BOOST_REQUIRE(started.ok());
  Status ready = WaitForLogLine("pks-a", *started, spec.log_file, 0, "serving", 10s);
  BOOST_TEST(ready.code() == StatusCode::kFailedPrecondition);
  BOOST_TEST(ready.message().find("pks-a stopped during start-up") != std::string::npos, ready.message());
  BOOST_TEST(ready.message().find("[plant] id is missing") != std::string::npos, ready.message());
}

BOOST_AUTO_TEST_CASE(ReadyLineIsLookedForOnlyAfterTheGivenOffset) {
  keyline::testing::TempDir dir;
  ProcessSpec spec = Shell(dir, "echo ready; sleep 0.3; echo ready again; sleep 30");
  auto first = StartProcess(spec);
  BOOST_REQUIRE(first.ok());
  BOOST_TEST(WaitForLogLine("first", *first, spec.log_file, 0, "ready again", 10s).ok());
  const uint64_t offset = FileSize(spec.log_file);
  // The log already says "ready" twice; only a new line after `offset` counts.
  Status again = WaitForLogLine("first", *first, spec.log_file, offset, "ready", 300ms);
  BOOST_TEST(again.code() == StatusCode::kDeadlineExceeded);
  BOOST_TEST(StopProcesses({{"first", *first}}, 5s).empty());
}

BOOST_AUTO_TEST_CASE(StopEscalatesToSigkillForAProcessIgnoringSigterm) {
  keyline::testing::TempDir dir;
  ProcessSpec spec = Shell(dir, "trap '' TERM; echo up; while true; do sleep 0.05; done");
  auto started = StartProcess(spec);
  BOOST_REQUIRE(started.ok());
  BOOST_REQUIRE(WaitForLogLine("stubborn", *started, spec.log_file, 0, "up", 10s).ok());
  const auto killed = StopProcesses({{"stubborn", *started}}, 300ms);
  BOOST_TEST(killed == std::vector<std::string>{"stubborn"}, boost::test_tools::per_element());
  BOOST_TEST(!IsRunning(*started));
}

BOOST_AUTO_TEST_CASE(AnotherStartTimeUnderTheSamePidIsNotTheProcess) {
  keyline::testing::TempDir dir;
  ProcessSpec spec = Shell(dir, "echo up; sleep 30");
  auto started = StartProcess(spec);
  BOOST_REQUIRE(started.ok());
  BOOST_TEST(started->start_ticks > 0u);
  BOOST_TEST(IsRunning(*started));
  // What lab.json would hold if the pid had been reused by another program since.
  BOOST_TEST(!IsRunning({started->pid, started->start_ticks + 1}));
  BOOST_TEST(StopProcesses({{"sleeper", *started}}, 5s).empty());
}

BOOST_AUTO_TEST_CASE(ToolOutputIsCapturedAndTheExitStatusKept) {
  auto ran = RunTool({"/bin/sh", "-c", "echo out; echo err >&2; echo \"$LAB_TEST_VALUE\"; exit 3"},
                     {{"LAB_TEST_VALUE", "from the caller"}});
  BOOST_REQUIRE(ran.ok());
  BOOST_TEST(ran->exit_code == 3);
  BOOST_TEST(ran->out == "out\nfrom the caller\n");
  BOOST_TEST(ran->err == "err\n");
  auto slow = RunTool({"/bin/sleep", "10"}, {}, {}, 200ms);
  BOOST_TEST(slow.status().code() == StatusCode::kDeadlineExceeded);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::lab

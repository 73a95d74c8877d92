// Starting and watching the lab's long-running processes (KMS, relays, PKSs, ECU simulators,
// injectors), and running the short-lived tools (keylinectl, keyline-pks status) to completion.
//
// A lab process outlives the keyline-lab command that started it: it runs in its own session
// (setsid, so a terminal's Ctrl-C or hang-up does not reach it), reads /dev/null and appends its
// stdout and stderr to its log file, and keeps none of the starter's other descriptors. It is
// known afterwards by its pid together with its start time (/proc/PID/stat field 22), so a pid
// that the kernel reused for another program is never taken for it, and never signalled.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "keyline/common/status.h"

namespace keyline::lab {

using Environment = std::map<std::string, std::string>;

// The environment a lab process gets: only these variables of the caller's, none of which
// carries a secret (keys are always passed as files), so it can be recorded in lab.json.
Environment InheritedEnvironment();

struct ProcessSpec {
  std::string name;                // "pks-a", for messages
  std::vector<std::string> argv;   // argv[0] is the program's absolute path
  std::filesystem::path cwd;       // working directory
  Environment env;                 // the whole environment of the process
  std::filesystem::path log_file;  // stdout and stderr are appended here (created 0600)
};

struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_ticks = 0;  // /proc/PID/stat starttime; 0 when unknown
};

// Forks and execs `spec` as described above. An exec failure (missing binary, no permission)
// is reported here, naming the program, instead of as a silent early death.
[[nodiscard]] StatusOr<ProcessIdentity> StartProcess(const ProcessSpec& spec);

// True while the process runs (a zombie or a different process under the same pid is not it).
// Reaps it when it is this process's own child.
bool IsRunning(const ProcessIdentity& process);

// SIGTERM to every running process, then up to `grace` for them to exit, then SIGKILL to the
// stragglers. Returns the names of those that had to be killed.
std::vector<std::string> StopProcesses(const std::vector<std::pair<std::string, ProcessIdentity>>& processes,
                                       std::chrono::milliseconds grace);

// Waits until `text` appears in `log_file` after byte `from_offset`. Fails when the process
// stops first (the message quotes the end of its log) or after `timeout`.
[[nodiscard]] Status WaitForLogLine(const std::string& name, const ProcessIdentity& process,
                                    const std::filesystem::path& log_file, uint64_t from_offset,
                                    const std::string& text, std::chrono::milliseconds timeout);

// The last `lines` lines of a log file, for error messages ("" when it cannot be read).
std::string LogTail(const std::filesystem::path& log_file, size_t lines = 15);

// Size of a file, 0 when it does not exist: where to start looking for a new log line.
uint64_t FileSize(const std::filesystem::path& path);

// The outcome of a tool run to completion.
struct ToolResult {
  int exit_code = -1;  // -1: killed by a signal or by the time-out
  std::string out;
  std::string err;
};

// Runs `argv` with the caller's environment plus `extra_env`, in `cwd` (empty: the caller's),
// capturing stdout and stderr. Fails when it could not be run, or ran longer than `timeout`
// (then it is killed).
[[nodiscard]] StatusOr<ToolResult> RunTool(const std::vector<std::string>& argv,
                                           const Environment& extra_env = {},
                                           const std::filesystem::path& cwd = {},
                                           std::chrono::milliseconds timeout = std::chrono::seconds(120));

}  // namespace keyline::lab

#include "keyline/lab/supervisor.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace keyline::lab {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// argv and envp as the NULL-terminated arrays execve wants, built before fork: between fork and
// exec the child may only make async-signal-safe calls, so nothing is allocated there.
class ExecImage {
 public:
  ExecImage(const std::vector<std::string>& argv, const Environment& env) : args_(argv) {
    for (const auto& [name, value] : env) vars_.push_back(name + "=" + value);
    for (auto& a : args_) argv_.push_back(a.data());
    argv_.push_back(nullptr);
    for (auto& v : vars_) envp_.push_back(v.data());
    envp_.push_back(nullptr);
  }
  char* const* argv() const { return argv_.data(); }
  char* const* envp() const { return envp_.data(); }

 private:
  std::vector<std::string> args_, vars_;
  std::vector<char*> argv_, envp_;
};

// What a child reports through its close-on-exec pipe when it cannot exec.
struct ChildFailure {
  int stage;  // 1 chdir, 2 exec
  int error;
};

// Child side, after fork: async-signal-safe calls only.
void PrepareChild(int stdin_fd, int stdout_fd, int stderr_fd) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaction(sig, &default_action, nullptr);
  dup2(stdin_fd, 0);
  dup2(stdout_fd, 1);
  dup2(stderr_fd, 2);
  // Everything else the parent had open (other services' pipes, sockets) closes at exec.
  syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
}

[[noreturn]] void ReportAndExit(int report_fd, int stage) {
  ChildFailure failure{stage, errno};
  ssize_t written = write(report_fd, &failure, sizeof failure);
  (void)written;
  _exit(127);
}

Status SystemError(const std::string& what) { return InternalError(what + ": " + std::strerror(errno)); }

// Forks and execs `image` with the given stdin/stdout/stderr, in `cwd` ("" keeps the caller's),
// in a new session if asked. Returns once the exec succeeded (a close-on-exec pipe closes) or
// with the reason it did not (the child writes its errno into that pipe).
StatusOr<pid_t> Spawn(const ExecImage& image, const std::string& cwd, bool new_session, int stdin_fd, int stdout_fd,
                      int stderr_fd) {
  const std::string program = image.argv()[0];
  if (stdin_fd < 0 || stdout_fd < 0 || stderr_fd < 0) return SystemError("cannot run " + program);
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return SystemError("cannot run " + program);
  const pid_t pid = fork();
  if (pid == 0) {
    if (new_session) setsid();
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) ReportAndExit(report[1], 1);
    PrepareChild(stdin_fd, stdout_fd, stderr_fd);
    execve(image.argv()[0], image.argv(), image.envp());
    ReportAndExit(report[1], 2);
  }
  const int fork_errno = errno;
  close(report[1]);
  if (pid < 0) {
    close(report[0]);
    errno = fork_errno;
    return SystemError("cannot run " + program + ": fork");
  }
  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(report[0], &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    int status = 0;
    waitpid(pid, &status, 0);
    return FailedPreconditionError("cannot " + (failure.stage == 1 ? "enter " + cwd : "run " + program) + ": " +
                                   std::strerror(failure.error));
  }
  return pid;
}

// State and start time from /proc/PID/stat; false when there is no such process.
bool ReadProcStat(pid_t pid, char& state, uint64_t& start_ticks) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const auto close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 1));
  std::string field;
  fields >> state;
  // Fields 4..21 skipped, 22 is starttime.
  for (int i = 4; i <= 21; ++i) fields >> field;
  fields >> start_ticks;
  return static_cast<bool>(fields);
}

}  // namespace

Environment InheritedEnvironment() {
  static const char* const kPassed[] = {"PATH",         "HOME",          "USER",          "LANG",
                                        "LC_ALL",       "TZ",            "TMPDIR",        "ASAN_OPTIONS",
                                        "UBSAN_OPTIONS", "LSAN_OPTIONS", "SOFTHSM2_CONF"};
  Environment env;
  for (const char* name : kPassed) {
    if (const char* value = std::getenv(name)) env[name] = value;
  }
  if (env.find("PATH") == env.end()) env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  return env;
}

StatusOr<ProcessIdentity> StartProcess(const ProcessSpec& spec) {
  if (spec.argv.empty()) return InvalidArgumentError(spec.name + ": no program to start");
  const int log_fd = open(spec.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return SystemError(spec.name + ": cannot open its log file " + spec.log_file.string());
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto pid = Spawn(ExecImage(spec.argv, spec.env), spec.cwd.string(), /*new_session=*/true, null_fd, log_fd, log_fd);
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  if (!pid.ok()) return pid.status().WithContext(spec.name);
  ProcessIdentity identity{*pid, 0};
  char state = 0;
  ReadProcStat(*pid, state, identity.start_ticks);
  return identity;
}

bool IsRunning(const ProcessIdentity& process) {
  if (process.pid <= 0) return false;
  int status = 0;
  if (waitpid(process.pid, &status, WNOHANG) == process.pid) return false;
  char state = 0;
  uint64_t start_ticks = 0;
  if (!ReadProcStat(process.pid, state, start_ticks)) return false;
  // An orphan that exited stays a zombie when nobody reaps it (PID 1 in some containers).
  if (state == 'Z' || state == 'X') return false;
  return process.start_ticks == 0 || process.start_ticks == start_ticks;
}

std::vector<std::string> StopProcesses(const std::vector<std::pair<std::string, ProcessIdentity>>& processes,
                                       std::chrono::milliseconds grace) {
  for (const auto& [name, process] : processes) {
    if (IsRunning(process)) kill(process.pid, SIGTERM);
  }
  auto any_running = [&] {
    for (const auto& entry : processes) {
      if (IsRunning(entry.second)) return true;
    }
    return false;
  };
  const auto deadline = Clock::now() + grace;
  while (any_running() && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  std::vector<std::string> killed;
  for (const auto& [name, process] : processes) {
    if (IsRunning(process)) {
      kill(process.pid, SIGKILL);
      killed.push_back(name);
    }
  }
  const auto kill_deadline = Clock::now() + 5s;
  while (!killed.empty() && any_running() && Clock::now() < kill_deadline) std::this_thread::sleep_for(20ms);
  return killed;
}

uint64_t FileSize(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

std::string LogTail(const std::filesystem::path& log_file, size_t lines) {
  std::ifstream in(log_file, std::ios::binary);
  if (!in) return "";
  constexpr std::streamoff kWindow = 64 * 1024;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(size > kWindow ? size - kWindow : 0);
  std::vector<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (tail.size() > lines) tail.erase(tail.begin());
  }
  std::string text;
  for (const auto& l : tail) text += (text.empty() ? "" : "\n") + l;
  return text;
}

Status WaitForLogLine(const std::string& name, const ProcessIdentity& process, const std::filesystem::path& log_file,
                      uint64_t from_offset, const std::string& text, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto found = [&] {
    std::ifstream in(log_file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(from_offset));
    std::string content((std::istreambuf_iterator<char>(in)), {});
    return content.find(text) != std::string::npos;
  };
  while (true) {
    if (found()) return Status::Ok();
    if (!IsRunning(process)) {
      if (found()) return Status::Ok();
      return FailedPreconditionError(name + " stopped during start-up; the end of " + log_file.string() + ":\n" +
                                     LogTail(log_file));
    }
    if (Clock::now() >= deadline) {
      return DeadlineExceededError(name + " did not report \"" + text + "\" within " +
                                   std::to_string(timeout.count() / 1000) + " s; the end of " + log_file.string() +
                                   ":\n" + LogTail(log_file));
    }
    std::this_thread::sleep_for(25ms);
  }
}

StatusOr<ToolResult> RunTool(const std::vector<std::string>& argv, const Environment& extra_env,
                             const std::filesystem::path& cwd, std::chrono::milliseconds timeout) {
  if (argv.empty()) return InvalidArgumentError("no program to run");
  Environment env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string_view::npos) env[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
  }
  for (const auto& [name, value] : extra_env) env[name] = value;
  // Close-on-exec everywhere, so that a tool started by another thread at the same moment does
  // not inherit this one's pipe ends (its EOF would never come).
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return SystemError("cannot run " + argv[0]);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return SystemError("cannot run " + argv[0]);
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto pid = Spawn(ExecImage(argv, env), cwd.string(), /*new_session=*/false, null_fd, out_pipe[1], err_pipe[1]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (null_fd >= 0) close(null_fd);
  if (!pid.ok()) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return pid.status();
  }
  ToolResult result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  int open_count = 2;
  char buffer[8192];
  while (open_count > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    const int ready = poll(fds, 2, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t got = read(fds[i].fd, buffer, sizeof buffer);
      if (got > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  if (timed_out) kill(*pid, SIGKILL);
  for (auto& fd : fds) {
    if (fd.fd >= 0) close(fd.fd);
  }
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = !timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (timed_out) {
    return DeadlineExceededError(argv[0] + " did not finish within " + std::to_string(timeout.count() / 1000) +
                                 " s" + (result.err.empty() ? "" : ": " + result.err));
  }
  return result;
}

}  // namespace keyline::lab

// Real processes for tests: start a binary with its stdout and stderr in a log file, kill it
// with SIGKILL or stop it with SIGTERM, wait for the line it prints when ready; or run a
// command to completion and collect what it printed.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace keyline::testing {

class ChildProcess {
 public:
  // argv[0] is the binary's path. `log` collects stdout and stderr (appended across restarts).
  ChildProcess(std::vector<std::string> argv, std::filesystem::path log)
      : argv_(std::move(argv)), log_(std::move(log)) {}
  ~ChildProcess() { Kill(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts the process; false if fork failed. The log's length is remembered, so WaitForLine
  // only looks at what this run printed.
  bool Start() {
    std::error_code ec;
    log_offset_ = std::filesystem::exists(log_, ec) ? std::filesystem::file_size(log_, ec) : 0;
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (std::string& arg : argv_) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return true;
  }

  // SIGKILL, and reap it. No-op when not running.
  void Kill() { Signal(SIGKILL); }
  // SIGTERM and wait: the exit status, or -1 when it did not exit normally (or never ran).
  int Stop() { return Signal(SIGTERM); }

  // Waits for it to exit by itself: the exit status, or -1 as for Stop.
  int Wait() { return Signal(0); }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::filesystem::path& log() const { return log_; }

  // Waits until this run printed a line starting with `prefix`; returns the rest of it.
  std::optional<std::string> WaitForLine(std::string_view prefix,
                                         std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      std::ifstream in(log_);
      in.seekg(static_cast<std::streamoff>(log_offset_));
      std::string line;
      while (std::getline(in, line)) {
        if (!in.eof() && line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < deadline);
    return std::nullopt;
  }

 private:
  int Signal(int signal) {
    if (pid_ <= 0) return -1;
    if (signal != 0) ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::vector<std::string> argv_;
  std::filesystem::path log_;
  uintmax_t log_offset_ = 0;
  pid_t pid_ = -1;
};

struct CommandResult {
  int status = -1;  // exit status; -1 when killed by a signal
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv (argv[0] = the binary's path) to completion.
inline CommandResult RunCommand(std::vector<std::string> argv,
                                const std::filesystem::path& scratch_log) {
  ChildProcess child(std::move(argv), scratch_log);
  std::error_code ec;
  std::filesystem::remove(scratch_log, ec);
  CommandResult result;
  if (!child.Start()) return result;
  result.status = child.Wait();
  std::ifstream in(scratch_log);
  std::stringstream text;
  text << in.rdbuf();
  result.output = text.str();
  return result;
}

}  // namespace keyline::testing

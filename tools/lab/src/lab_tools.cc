#include "lab_tools.h"

#include <unistd.h>

#include <sstream>

namespace keyline::lab {
namespace {

namespace fs = std::filesystem;

std::string CommandLine(const std::string& program, const std::vector<std::string>& args) {
  std::string line = program;
  for (const auto& a : args) line += " " + a;
  return line;
}

std::string OneLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

StatusOr<fs::path> OwnBinDir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return InternalError("cannot find keyline-lab's own directory: " + ec.message());
  return self.parent_path();
}

Status LabTools::CheckBinaries(const std::vector<std::string>& names) const {
  std::string missing;
  for (const auto& name : names) {
    if (access(Binary(name).c_str(), X_OK) != 0) missing += (missing.empty() ? "" : " ") + name;
  }
  if (missing.empty()) return Status::Ok();
  return FailedPreconditionError("missing in " + bin_dir_.string() + ": " + missing +
                                 " (build them: cmake --build <build dir> --target " + missing + ")");
}

StatusOr<std::string> LabTools::Run(const std::string& program, const std::vector<std::string>& args,
                                    std::chrono::milliseconds timeout) const {
  std::vector<std::string> argv = {Binary(program).string()};
  argv.insert(argv.end(), args.begin(), args.end());
  const Environment env = program == "keylinectl" ? keylinectl_env_ : Environment{};
  ASSIGN_OR_RETURN(ToolResult result, RunTool(argv, env, {}, timeout));
  if (result.exit_code != 0) {
    std::string why = OneLine(result.err.empty() ? result.out : result.err);
    return FailedPreconditionError(CommandLine(program, args) + " failed (exit " + std::to_string(result.exit_code) +
                                   "): " + why);
  }
  return result.out;
}

StatusOr<nlohmann::json> LabTools::RunJson(const std::string& program, const std::vector<std::string>& args,
                                           std::chrono::milliseconds timeout) const {
  ASSIGN_OR_RETURN(std::string out, Run(program, args, timeout));
  return LastJsonLine(out, CommandLine(program, args));
}

StatusOr<nlohmann::json> LastJsonLine(const std::string& out, const std::string& what) {
  std::istringstream lines(out);
  std::string line, last;
  while (std::getline(lines, line)) {
    if (!line.empty()) last = line;
  }
  auto j = nlohmann::json::parse(last, nullptr, false);
  if (j.is_discarded()) return DataLossError(what + " printed no JSON: " + OneLine(out));
  return j;
}

}  // namespace keyline::lab

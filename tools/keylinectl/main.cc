// keylinectl: thin main. Command groups register themselves (command.h); parse errors are one
// line on stderr with exit status 2.
#include <CLI/CLI.hpp>

#include <cctype>
#include <iostream>
#include <string>

#include "command.h"
#include "keyline/common/log.h"

namespace keyline::keylinectl {

void CommandContext::Fail(int code, std::string_view message) {
  std::string line(message);
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  *err << "keylinectl: " << line << '\n';
  exit_code = code;
}

namespace {

// CLI11 quotes unexpected arguments in its errors, and a mistyped option name puts a key's hex
// there. Runs of 32 or more hex digits (a key, or longer) are redacted from parse errors.
std::string RedactHexRuns(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && std::isxdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j - i >= 32) {
      out += "<" + std::to_string(j - i) + " hex digits>";
      i = j;
    } else if (j > i) {
      out.append(text.substr(i, j - i));
      i = j;
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

}  // namespace
}  // namespace keyline::keylinectl

int main(int argc, char** argv) {
  using keyline::keylinectl::CommandContext;
  CLI::App app{"keylinectl: Keyline administration and engineering tool"};
  app.require_subcommand(1);
  // Logs go to stderr, so that stdout (figures, --json) stays machine-readable.
  if (!keyline::InitLogging({"keylinectl", "warn", std::nullopt}).ok()) return 1;
  CommandContext context{&std::cout, &std::cerr};
  keyline::keylinectl::RegisterSheCommands(app, context);
  keyline::keylinectl::RegisterAdminCommands(app, context);
  keyline::keylinectl::RegisterCaCommands(app, context);
  keyline::keylinectl::RegisterKeysCommands(app, context);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    context.Fail(keyline::keylinectl::kExitUsage, keyline::keylinectl::RedactHexRuns(e.what()));
  }
  return context.exit_code;
}

// keylinectl: thin main. Command groups register themselves (command.h); parse errors are one
// line on stderr with exit status 2.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "command.h"

namespace keyline::keylinectl {

void CommandContext::Fail(int code, std::string_view message) {
  std::string line(message);
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  *err << "keylinectl: " << line << '\n';
  exit_code = code;
}

}  // namespace keyline::keylinectl

int main(int argc, char** argv) {
  using keyline::keylinectl::CommandContext;
  CLI::App app{"keylinectl: Keyline administration and engineering tool"};
  app.require_subcommand(1);
  CommandContext context{&std::cout, &std::cerr};
  keyline::keylinectl::RegisterSheCommands(app, context);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    context.Fail(keyline::keylinectl::kExitUsage, e.what());
  }
  return context.exit_code;
}

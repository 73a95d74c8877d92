// How keylinectl's command groups plug into main: each group (she, later oem, product, plant,
// station, verification, audit, status) lives in its own file and registers its CLI11
// subcommands here. A command's callback stores its exit status in the context.
#pragma once

#include <iosfwd>
#include <string_view>

namespace CLI {
class App;
}

namespace keyline::keylinectl {

// Exit statuses shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;      // the command ran and the answer is "no" / it failed
inline constexpr int kExitUsage = 2;       // bad input: bad hex, wrong length, out of range

struct CommandContext {
  std::ostream* out;  // results
  std::ostream* err;  // one-line errors
  int exit_code = kExitOk;

  // Prints "keylinectl: <message>" on one line and sets the exit status.
  void Fail(int code, std::string_view message);
};

// she_command.cc: `keylinectl she compute|check`.
void RegisterSheCommands(CLI::App& root, CommandContext& context);
// admin_commands.cc: oem, product, plant, station, sync-policy, verification, audit, status.
void RegisterAdminCommands(CLI::App& root, CommandContext& context);
// ca_commands.cc: `keylinectl oem ca ...`, `keylinectl plant ca ...` (after RegisterAdminCommands:
// it adds to the oem and plant groups).
void RegisterCaCommands(CLI::App& root, CommandContext& context);
// keys_command.cc: `keylinectl keys generate curve|hsm-master|hex`.
void RegisterKeysCommands(CLI::App& root, CommandContext& context);

}  // namespace keyline::keylinectl

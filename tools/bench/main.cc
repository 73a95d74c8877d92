// keyline-bench: thin main. Benchmarks print figures (and --json); they assert nothing.
#include <CLI/CLI.hpp>

#include <iostream>

#include "bench.h"
#include "keyline/common/log.h"

int main(int argc, char** argv) {
  CLI::App app{"keyline-bench: Keyline throughput figures"};
  app.require_subcommand(1);
  // Logs go to stderr, so that stdout (figures, --json) stays machine-readable.
  if (!keyline::InitLogging({"keyline-bench", "warn", std::nullopt}).ok()) return 1;
  keyline::bench::BenchContext context;
  keyline::bench::RegisterSheBench(app, context);
  keyline::bench::RegisterQueueBench(app, context);
  keyline::bench::RegisterProvisionBench(app, context);
  keyline::bench::RegisterImportBench(app, context);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "keyline-bench: " << e.what() << '\n';
    return 2;
  }
  return context.exit_code;
}

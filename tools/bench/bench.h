// How keyline-bench's groups plug into main: each group (she; later queue, provision, import)
// lives in its own file and registers its CLI11 subcommand.
#pragma once

namespace CLI {
class App;
}

namespace keyline::bench {

struct BenchContext {
  int exit_code = 0;
};

// she_bench.cc: `keyline-bench she`.
void RegisterSheBench(CLI::App& root, BenchContext& context);
// queue_bench.cc: `keyline-bench queue`.
void RegisterQueueBench(CLI::App& root, BenchContext& context);

// provision_bench.cc: `keyline-bench provision`.
void RegisterProvisionBench(CLI::App& root, BenchContext& context);
// import_bench.cc: `keyline-bench import`.
void RegisterImportBench(CLI::App& root, BenchContext& context);

}  // namespace keyline::bench

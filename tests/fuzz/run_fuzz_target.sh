#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on a scratch copy of its seed corpora; exits
# non-zero on any crash, sanitizer report, slow input (-timeout) or memory blow-up.
#   run_fuzz_target.sh BINARY SECONDS ARTIFACT_DIR DICTIONARY|"" CORPUS_DIR...
set -euo pipefail

binary=$1 seconds=$2 artifacts=$3 dictionary=$4
shift 4

scratch=$(mktemp -d "${TMPDIR:-/tmp}/keyline-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
for corpus in "$@"; do
  if [[ -d "$corpus" ]]; then
    find "$corpus" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$scratch/" \;
  fi
done
mkdir -p "$artifacts"

flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536
       -print_final_stats=1 -artifact_prefix="$artifacts/")
[[ -n "$dictionary" ]] && flags+=(-dict="$dictionary")

# Our own options, not the caller's: scripts/test exports a slow-unwinding ASAN_OPTIONS for
# its unit tests, which would cut the executions per second here several times.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "fuzzing $(basename "$binary") for ${seconds}s on $(ls "$scratch" | wc -l) seeds"
"$binary" "${flags[@]}" "$scratch"

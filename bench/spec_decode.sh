#!/usr/bin/env bash
# Speculative decoding against plain decoding on the default model, side by side in one process per
# row (issue 16; results in docs/PERF.md). From a clean clone:
#
#   bench/spec_decode.sh          # REPS=5; SKIP_BUILD=1 reuses $BUILD_DIR
#
# Rows: MTP k = 3 at batch 1 (the acceptance goal: >= 1.5x at acceptance >= 0.6), n-gram k = 3 at
# batch 1 on the story prompts, and MTP k = 3 at batch 64 with the default per-step auto-off (the
# "no slowdown above 5%" row). Each row is moeserve-spec-bench: the same greedy requests through a
# plain and a speculating engine, alternating, median of REPS rounds. The machine is shared: read
# the ratio, not the absolute tok/s; the load average is printed at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
reps="${REPS:-5}"
build_dir="${BUILD_DIR:-$root/build}"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  BUILD_DIR="$build_dir" "$root/scripts/build.sh" >&2
fi
bench="$build_dir/bin/moeserve-spec-bench"
model="$root/models/default"
run() {
  echo "## $*"
  "$bench" --model "$model" --threads 1 --repeats "$reps" "$@"
  echo
}
run --method mtp --k 3 --batch 1 --max-tokens 128
run --method ngram --k 3 --batch 1 --max-tokens 128
run --method mtp --k 3 --batch 64 --max-tokens 64
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

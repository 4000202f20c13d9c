#!/usr/bin/env bash
# Structured-output benchmark in one command (docs/PERF.md): compile time and per-token mask time
# of every acceptance-test JSON Schema, the regexes and json_object on DeepSeek-V3's 129k-token
# vocabulary. Builds moeserve-structured-bench into $BUILD_DIR (default build) if needed.
#   bench/structured/run.sh [--walks N] [--max-steps N]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
data="${MOESERVE_TEST_DATA:-$root/../shared/data}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build" --target moeserve-structured-bench
python3 "$root/bench/structured/make_constraints.py" > "$work/constraints.jsonl"
"$build/bin/moeserve-structured-bench" --tokenizer "$data/tokenizers/deepseek_v3" \
  --constraints "$work/constraints.jsonl" --walks 2 --max-steps 200 --tokens-out "$work/walks.jsonl" "$@"

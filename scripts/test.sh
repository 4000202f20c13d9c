#!/usr/bin/env bash
# Builds everything (scripts/build.sh) and runs the whole test suite with CTest.
# Extra arguments go to ctest (e.g. -R Tokenizer, or -L unit for the unit tests alone). Environment
# as for scripts/build.sh, plus MOESERVE_TEST_DATA (default ../shared/data beside the repository).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
BUILD_DIR="$build_dir" "$root/scripts/build.sh"
ctest --test-dir "$build_dir" --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 600 "$@"

#!/usr/bin/env bash
# Builds everything (scripts/build.sh) and runs the whole test suite with CTest, then the sanitizer
# and fuzzing stages named in MOESERVE_SANITIZERS (scripts/sanitize.sh: asan, an ASan+UBSan build
# running every test; tsan, a TSan build running the concurrency tests; fuzz, each libFuzzer target
# over its corpus), as CI does (.ci/run).
# Extra arguments go to ctest (e.g. -R Tokenizer, or -L unit for the unit tests alone) and skip the
# sanitizer stages. Environment as for scripts/build.sh, plus MOESERVE_TEST_DATA (default
# ../shared/data beside the repository) and MOESERVE_SANITIZERS (default none yet; e.g. "asan tsan
# fuzz").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
start=$SECONDS
BUILD_DIR="$build_dir" "$root/scripts/build.sh"
ctest --test-dir "$build_dir" --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 600 "$@"
echo "test: build and suite took $((SECONDS - start)) s"
stages="${MOESERVE_SANITIZERS-}"
if (($# == 0)) && [[ -n "$stages" ]]; then
  read -r -a stage_list <<<"$stages"
  MOESERVE_SKIP_DEPS=1 "$root/scripts/sanitize.sh" "${stage_list[@]}"
  echo "test: everything took $((SECONDS - start)) s"
fi

#!/usr/bin/env bash
# The sanitizer and fuzzing stages of CI (scripts/test.sh runs them after the main suite). Each
# builds host code only with clang (CUDA off, no bench/) into its own directory beside build/,
# through ccache, and fails on the first report:
#   asan  build-asan: ASan + LeakSanitizer + UBSan, every report fatal, and libFuzzer coverage
#         (-DMOESERVE_FUZZ=ON: this is also the fuzz build); runs every CTest test (labels unit
#         and integration).
#   tsan  build-tsan: TSan; builds the test binaries in TSAN_TARGETS below and runs the engine,
#         scheduler, serving, API and HTTP concurrency tests (TSAN_REGEX below).
#   fuzz  build-asan: every *_fuzz libFuzzer target (scripts/fuzz.sh) over its committed corpus
#         for FUZZ_SECONDS each, JOBS at a time; an input slower than FUZZ_INPUT_TIMEOUT seconds,
#         a crash or a sanitizer report fails it.
# Prints the time each stage took. Reports name the file and line (llvm-symbolizer).
# Usage: scripts/sanitize.sh [asan] [tsan] [fuzz]     (no argument: all three, in that order)
# Environment: JOBS (default nproc), MOESERVE_SKIP_DEPS=1 to skip the package check,
#   FUZZ_SECONDS (default 25), FUZZ_INPUT_TIMEOUT (default 10), SANITIZE_CTEST_ARGS (extra
#   ctest arguments, e.g. "-R Engine").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${JOBS:-$(nproc)}"
stages=("$@")
((${#stages[@]} > 0)) || stages=(asan tsan fuzz)

# The test binaries the TSan stage builds, and the tests it runs from them: everything that runs
# the engine thread beside callers, the serving frontend, and the gRPC/HTTP servers with
# concurrent clients, plus the thread pool.
TSAN_TARGETS=(engine_test scheduler_test serving_frontend_test api_server_test api_lifecycle_test
              http_server_test common_test)
TSAN_REGEX='^([A-Za-z]+/)?(EngineTest|EngineThreadTest|BatchingTest|AbortTest|ParallelSamplingTest|SchedulerTest|StressTest|ForkTest|Frontend[A-Za-z]*Test|StructuredOutputTest|ServerTest|MoeServerTest|AuthTest|Stories260kServerTest|LifecycleTest|HttpServerTest|ThreadPoolTest)\.'

if [[ "${MOESERVE_SKIP_DEPS:-0}" != "1" ]]; then
  "$root/scripts/install-deps.sh"
fi

asan_dir="$root/build-asan"
tsan_dir="$root/build-tsan"
ninja=()
if command -v ninja >/dev/null 2>&1; then ninja=(-G Ninja); fi

# configure DIR ARGS...: configures DIR with clang, host code only, at -O1 with line tables only
# (file:line in reports, a fraction of -g's compile time) and assertions on. -O1: at -O0 the
# instrumented tokenizer and model loads make the tests and the fuzzers' first inputs crawl.
configure() {
  local dir="$1"
  shift
  local generator=()
  [[ -f "$dir/CMakeCache.txt" ]] || { mkdir -p "$dir"; generator=("${ninja[@]}"); }
  CC=clang CXX=clang++ cmake -S "$root" -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DMOESERVE_CUDA=OFF -DMOESERVE_BUILD_BENCH=OFF "$@" >"$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log"; return 1; }
}
asan_configure() { configure "$asan_dir" -DMOESERVE_SANITIZE=address -DMOESERVE_FUZZ=ON; }

stage_start=0
begin() {
  stage_start=$SECONDS
  echo "sanitize: $1 ($(date -u +%T))"
}
end() { echo "sanitize: $1 took $((SECONDS - stage_start)) s"; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1:strict_init_order=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/sanitizers/tsan.supp}"
ctest_args=(--output-on-failure --no-tests=error -j "$jobs" --timeout 900)
if [[ -n "${SANITIZE_CTEST_ARGS:-}" ]]; then
  read -r -a extra <<<"$SANITIZE_CTEST_ARGS"
  ctest_args+=("${extra[@]}")
fi

for stage in "${stages[@]}"; do
  case "$stage" in
    asan)
      begin "ASan+UBSan build ($asan_dir)"
      asan_configure
      cmake --build "$asan_dir" -j "$jobs"
      end "ASan+UBSan build"
      begin "ASan+UBSan tests (unit and integration)"
      ctest --test-dir "$asan_dir" -L 'unit|integration' "${ctest_args[@]}"
      end "ASan+UBSan tests"
      ;;
    tsan)
      begin "TSan build ($tsan_dir: ${TSAN_TARGETS[*]})"
      configure "$tsan_dir" -DMOESERVE_SANITIZE=thread
      cmake --build "$tsan_dir" -j "$jobs" --target "${TSAN_TARGETS[@]}"
      end "TSan build"
      begin "TSan tests (-R '$TSAN_REGEX')"
      ctest --test-dir "$tsan_dir" -R "$TSAN_REGEX" "${ctest_args[@]}"
      end "TSan tests"
      ;;
    fuzz)
      begin "fuzz build ($asan_dir)"
      asan_configure
      cmake --build "$asan_dir" -j "$jobs" --target moeserve_fuzz_targets
      end "fuzz build"
      targets=("$asan_dir"/bin/*_fuzz)
      seconds="${FUZZ_SECONDS:-25}"
      begin "fuzzing ${#targets[@]} targets, $seconds s each, $jobs at a time"
      JOBS="$jobs" "$root/scripts/fuzz.sh" --build "$asan_dir" --seconds "$seconds" \
        --timeout "${FUZZ_INPUT_TIMEOUT:-10}"
      end "fuzzing"
      ;;
    *)
      echo "sanitize: unknown stage '$stage' (asan, tsan or fuzz)" >&2
      exit 2
      ;;
  esac
done

#!/usr/bin/env bash
# Runs libFuzzer targets for a bounded time: every <build>/bin/*_fuzz (or the TARGETs named), each
# over its committed corpus tests/fuzz/corpus/<name without _fuzz>/ (read only: new inputs go to a
# scratch directory) with tests/fuzz/<name without _fuzz>.dict when there is one. A crash, a
# sanitizer report, an input slower than --timeout seconds or more than --rss-mb of memory fails
# the run; the reproducer is kept in <build>/fuzz-artifacts/ and its path printed, e.g.
#   build-asan/bin/tokenizer_chat_template_fuzz build-asan/fuzz-artifacts/tokenizer_chat_template_fuzz-crash-...
# Targets run JOBS at a time. Build them first (scripts/sanitize.sh fuzz does both).
# Usage: scripts/fuzz.sh [--build DIR] [--seconds N] [--timeout S] [--rss-mb M] [--merge] [TARGET...]
#   --merge  also adds the new inputs that raise coverage to the committed corpus (by hand, then
#            review and commit them).
# Environment: JOBS (default nproc).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-asan"
seconds=45
timeout=10
rss_mb=2048
merge=0
targets=()
while (($# > 0)); do
  case "$1" in
    --build) build="$(cd "$2" && pwd)"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --rss-mb) rss_mb="$2"; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done

if ((${#targets[@]} == 0)); then
  for bin in "$build"/bin/*_fuzz; do
    [[ -x "$bin" ]] && targets+=("$(basename "$bin")")
  done
fi
if ((${#targets[@]} == 0)); then
  echo "fuzz: no *_fuzz binaries in $build/bin (build with -DMOESERVE_FUZZ=ON)" >&2
  exit 1
fi

artifacts="$build/fuzz-artifacts"
logs="$build/fuzz-logs"
mkdir -p "$artifacts" "$logs"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# Runs one target; prints one summary line; returns its libFuzzer status.
run_one() {
  local name="$1" stem="${1%_fuzz}"
  local bin="$build/bin/$name" corpus="$root/tests/fuzz/corpus/$stem" dict="$root/tests/fuzz/$stem.dict"
  local log="$logs/$name.log" scratch
  if [[ ! -x "$bin" ]]; then
    echo "fuzz: $name: no binary $bin" >&2
    return 1
  fi
  if [[ ! -d "$corpus" ]]; then
    echo "fuzz: $name: no corpus directory $corpus (commit a few seed inputs there)" >&2
    return 1
  fi
  scratch="$(mktemp -d "${TMPDIR:-/tmp}/moeserve-fuzz-$stem.XXXXXX")"
  local args=(-max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss_mb"
              -print_final_stats=1 -artifact_prefix="$artifacts/$name-")
  [[ -f "$dict" ]] && args+=(-dict="$dict")
  local status=0 start=$SECONDS
  "$bin" "${args[@]}" "$scratch" "$corpus" >"$log" 2>&1 || status=$?
  local runs cov
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)"
  if ((status == 0)); then
    echo "fuzz: $name: ok, $((SECONDS - start)) s, ${runs:-?} runs, coverage ${cov:-?}"
    if ((merge)); then
      "$bin" -merge=1 "$corpus" "$scratch" >>"$log" 2>&1
      echo "fuzz: $name: merged new coverage into $corpus"
    fi
  else
    echo "fuzz: $name: FAILED (exit $status) after $((SECONDS - start)) s; log $log" >&2
    grep -E "^==[0-9]+==|ERROR:|SUMMARY:|Test unit written to|runtime error|invariant broken|ALARM|out-of-memory" \
      "$log" | head -20 >&2 || true
  fi
  rm -rf "$scratch"
  return "$status"
}
export -f run_one
export build root seconds timeout rss_mb merge artifacts logs

printf '%s\n' "${targets[@]}" | xargs -P "${JOBS:-$(nproc)}" -I{} bash -c 'run_one "$@"' _ {}

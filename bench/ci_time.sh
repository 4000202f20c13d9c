#!/usr/bin/env bash
# How long CI takes: `.ci/run` on a fresh clone of this repository's HEAD, cold (ccache off, as on
# a CI machine with an empty cache) or warm (through the shared ccache), and the time of each
# stage (issue 18; results in docs/PERF.md). From a clean clone:
#
#   bench/ci_time.sh            # cold: CCACHE_DISABLE=1
#   WARM=1 bench/ci_time.sh     # warm: through ccache (run it once cold or warm first)
#
# The clone goes beside the repository (so that ../shared/data resolves as it does here) and is
# removed afterwards; the full log is kept in ${TMPDIR:-/tmp}/moeserve-ci-time.log. Prints one row
# per stage (scripts/test.sh and scripts/sanitize.sh print "... took N s"), the total, and the
# load average before and after. The machine is shared: a figure taken under load is an upper
# bound. Environment: WARM (0), JOBS (nproc), MOESERVE_SANITIZERS (as scripts/test.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
clone="$(mktemp -d "$(dirname "$root")/ci-time.XXXXXX")"
log="${TMPDIR:-/tmp}/moeserve-ci-time.log"
trap 'rm -rf "$clone"' EXIT
git clone -q "$root" "$clone"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
cache=()
[[ "${WARM:-0}" == 1 ]] || cache=(CCACHE_DISABLE=1)
start=$SECONDS
status=0
(cd "$clone" && env "${cache[@]}" bash .ci/run) >"$log" 2>&1 || status=$?
total=$((SECONDS - start))
echo "CI time ($([[ "${WARM:-0}" == 1 ]] && echo warm || echo cold), $(nproc) cores, commit $(git -C "$root" rev-parse --short HEAD))"
grep -E '^(test: build and suite|sanitize: .*) took [0-9]+ s$' "$log" |
  sed -E 's/^(test|sanitize): (.*) took ([0-9]+) s$/\3 \2/' |
  awk '{ s = $1; $1 = ""; printf "  %-60s %5d s  (%.1f min)\n", substr($0, 2), s, s / 60 }'
awk -v s="$total" -v st="$status" 'BEGIN { printf "  %-60s %5d s  (%.1f min)\n", "total (.ci/run, exit " st ")", s, s / 60 }'
echo "load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg); log: $log"
exit "$status"

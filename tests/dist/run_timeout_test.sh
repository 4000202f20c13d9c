#!/usr/bin/env bash
# run_timeout_test.sh MPIEXEC BINARY hang|die: rank 1 of 2 hangs or dies; the group must end
# non-zero within 30 s (collective timeout 2 s + liveness grace 3 s for a hang; at once for a
# death), with rank 0's own message naming rank 1.
set -uo pipefail
mpiexec="$1" binary="$2" mode="$3"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp)
start=$(date +%s)
timeout 60 "$mpiexec" --oversubscribe -np 2 "$binary" "$mode" >"$out" 2>&1
rc=$?
elapsed=$(($(date +%s) - start))
cat "$out"
if [[ $rc -eq 0 || $rc -eq 124 ]]; then echo "FAIL: exit status $rc (want non-zero, not a timeout)"; exit 1; fi
if ((elapsed > 30)); then echo "FAIL: took ${elapsed}s"; exit 1; fi
case "$mode" in
  hang) pattern='rank 0 of 2: .*all_reduce #2 .*did not complete within 2s; no answer from rank 1' ;;
  die) pattern='rank 0 of 2: lost rank 1 \(pid [0-9]+ on .*\): its process ended' ;;
esac
if ! grep -Eq "$pattern" "$out"; then echo "FAIL: no message matching: $pattern"; exit 1; fi
echo "PASS: exit status $rc after ${elapsed}s"

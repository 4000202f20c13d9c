#!/usr/bin/env bash
# Decode step time with tensor parallelism on CPU ranks against one rank, side by side, in one run
# (issue 15; results in docs/PERF.md). From a clean clone:
#
#   bench/tp_decode.sh            # REPS=3 BATCHES=1,32 TP=2
#
# 1. builds moeserve (scripts/build.sh into $BUILD_DIR, default build/);
# 2. makes a random bf16 model with `moeserve make-model` from bench/configs/deepseek_v2_lite_4l.json
#    (DeepSeek-V2-Lite shapes with 4 layers: MLA, 64 experts top-6, 2 shared experts), cached under
#    $MODEL_DIR;
# 3. runs, REPS times, one rank (moeserve-decode-bench --threads 1) and then TP ranks under
#    `mpirun -np TP` (--tensor-parallel-size TP --threads 1, so each rank has one thread and the
#    pair uses as many cores as ranks), each --batch BATCHES --prompt-len PROMPT --steps STEPS;
#    EP=1 adds a run with --expert-parallel, its tokens exchanged as EP_DISPATCH says: allreduce
#    (the default), alltoall, or both (a run of each: `EP=1 EP_DISPATCH=both`);
# 4. prints per batch the median decode ms/step of each (range in brackets), the speed-up, and for
#    each sharded run the milliseconds per step rank 0 spent in collectives (waiting for the other
#    rank included) with their share of the step; then the load average.
#
# Environment: REPS (3), BATCHES (1,32), TP (2), PROMPT (64), STEPS (16), EP (0), EP_DISPATCH
# (allreduce), BUILD_DIR,
# MODEL_DIR (~/.cache/moeserve-bench/v2lite4l), KEEP_LOGS=DIR. The machine is shared: compare the
# ratio, not the absolute figures.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
reps="${REPS:-3}"
batches="${BATCHES:-1,32}"
tp="${TP:-2}"
prompt="${PROMPT:-64}"
steps="${STEPS:-16}"
build_dir="${BUILD_DIR:-$root/build}"
model="${MODEL_DIR:-$HOME/.cache/moeserve-bench/v2lite4l}"
logs="${KEEP_LOGS:-$(mktemp -d)}"
mkdir -p "$logs"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
log() { echo "tp_decode: $*" >&2; }

BUILD_DIR="$build_dir" "$root/scripts/build.sh" >&2
bench="$build_dir/bin/moeserve-decode-bench"
if [[ ! -f "$model/config.json" ]]; then
  log "making $model"
  "$build_dir/bin/moeserve" make-model --config "$root/bench/configs/deepseek_v2_lite_4l.json" --out "$model" \
    --seed 0 --dtype bf16
fi

common=(--model "$model" --batch "$batches" --prompt-len "$prompt" --steps "$steps" --threads 1)
modes=(one tp)
ep_dispatch="${EP_DISPATCH:-allreduce}"
case "$ep_dispatch" in allreduce | alltoall | both) ;; *) log "EP_DISPATCH: allreduce, alltoall or both"; exit 2 ;; esac
if [[ "${EP:-0}" == "1" ]]; then
  [[ "$ep_dispatch" != "alltoall" ]] && modes+=(ep)
  [[ "$ep_dispatch" != "allreduce" ]] && modes+=(a2a)
fi
for rep in $(seq 1 "$reps"); do
  for mode in "${modes[@]}"; do
    out="$logs/$mode.$rep.txt"
    case "$mode" in
      one) "$bench" "${common[@]}" >"$out" ;;
      tp) mpirun --oversubscribe -np "$tp" "$bench" "${common[@]}" --tensor-parallel-size "$tp" >"$out" ;;
      ep) mpirun --oversubscribe -np "$tp" "$bench" "${common[@]}" --tensor-parallel-size "$tp" --expert-parallel >"$out" ;;
      a2a) mpirun --oversubscribe -np "$tp" "$bench" "${common[@]}" --tensor-parallel-size "$tp" --expert-parallel \
        --ep-dispatch alltoall >"$out" ;;
    esac
    log "rep $rep $mode: $(grep -c '^decode batch=' "$out") rows"
  done
done

python3 - "$logs" "$reps" "$tp" "${modes[@]}" <<'EOF'
import glob, os, re, statistics, sys
logs, reps, tp, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
rows = {}  # (mode, batch) -> [(median_ms, coll_ms)]
for mode in modes:
    for rep in range(1, reps + 1):
        for line in open(os.path.join(logs, f"{mode}.{rep}.txt")):
            m = re.match(r"decode batch=(\d+) graphs=off median_ms=([\d.]+) misses=-?\d+ coll_ms=([\d.]+)", line)
            if m:
                rows.setdefault((mode, int(m.group(1))), []).append((float(m.group(2)), float(m.group(3))))
def fmt(v):
    return f"{statistics.median(v):.1f} [{min(v):.1f}-{max(v):.1f}]"
names = {"one": "1 rank", "tp": f"TP={tp}", "ep": f"TP={tp} EP", "a2a": f"TP={tp} EP all-to-all"}
sharded = [m for m in modes if m != "one"]
print(f"| batch | {' | '.join(names[m] + ' ms/step' for m in modes)} | speed-up | "
      f"collectives ms/step (share): {' / '.join(names[m] for m in sharded)} |")
print("|---:|" + "---:|" * (len(modes) + 2))
for batch in sorted({b for _, b in rows}):
    cells, meds = [], {}
    for m in modes:
        v = [r[0] for r in rows[(m, batch)]]
        meds[m] = statistics.median(v)
        cells.append(fmt(v))
    speed = " / ".join(f"{meds['one'] / meds[m]:.2f}x" for m in sharded)
    colls = []
    for m in sharded:
        coll = statistics.median([r[1] for r in rows[(m, batch)]])
        colls.append(f"{coll:.1f} ({100 * coll / meds[m]:.0f}%)")
    print(f"| {batch} | {' | '.join(cells)} | {speed} | {' / '.join(colls)} |")
EOF
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); logs in $logs"

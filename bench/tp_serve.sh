#!/usr/bin/env bash
# The step broadcast of a serving TP group on CPU ranks, per step (issue 15; results in
# docs/PERF.md). From a clean clone:
#
#   bench/tp_serve.sh            # TP=2 CONCURRENCY=1,16
#
# Builds moeserve (scripts/build.sh into $BUILD_DIR, default build/; SKIP_BUILD=1 reuses it), makes
# the V2-Lite-shaped 4-layer bf16 model of bench/tp_decode.sh (cached in $MODEL_DIR), then runs
# bench/tp_serve.py: a `mpirun -np TP moeserve serve` group per concurrency, driven by
# moeserve-bench, with rank 0's step-message figures from /metrics. Environment: TP (2),
# CONCURRENCY (1,16), REQUESTS (4 per stream), INPUT_LEN (64), OUTPUT_LEN (64), BUILD_DIR,
# MODEL_DIR (~/.cache/moeserve-bench/v2lite4l), MODEL (any model folder instead).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
model="${MODEL:-${MODEL_DIR:-$HOME/.cache/moeserve-bench/v2lite4l}}"
[[ "${SKIP_BUILD:-0}" == "1" ]] || BUILD_DIR="$build_dir" "$root/scripts/build.sh" >&2
if [[ ! -f "$model/config.json" ]]; then
  echo "tp_serve: making $model" >&2
  "$build_dir/bin/moeserve" make-model --config "$root/bench/configs/deepseek_v2_lite_4l.json" --out "$model" \
    --seed 0 --dtype bf16
fi
python3 "$root/bench/tp_serve.py" --moeserve "$build_dir/bin/moeserve" --bench "$build_dir/bin/moeserve-bench" \
  --model "$model" --tp "${TP:-2}" --concurrency "${CONCURRENCY:-1,16}" --requests "${REQUESTS:-4}" \
  --input-len "${INPUT_LEN:-64}" --output-len "${OUTPUT_LEN:-64}"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

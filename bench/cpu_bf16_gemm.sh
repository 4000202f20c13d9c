#!/usr/bin/env bash
# The CPU backend's bf16 dot-product GEMM (AVX512_BF16: activations rounded to bf16, as llama.cpp
# and oneDNN do) against its exact path (fp32 activations, CpuBackendOptions::exact_gemm), per
# product and end to end, side by side in one run (issue 20; results in docs/PERF.md). From a
# clean clone:
#
#   bench/cpu_bf16_gemm.sh            # THREADS=2 REPS=3 BATCHES=1,16,64,256
#
# 1. builds moeserve (scripts/build.sh into $BUILD_DIR, default build/; SKIP_BUILD=1 uses the
#    binaries already there);
# 2. the Qwen2-0.5B products: moeserve-cpu-gemm-vs-libs --models qwen2 (ours, exact, OpenBLAS,
#    oneDNN; median microseconds per call and the ratios);
# 3. makes the random bf16 Qwen2-0.5B-shaped model once (moeserve make-model from
#    bench/configs/qwen2_0_5b.json, seed 0, cached under ~/.cache/moeserve-peers/models/qwen2-0.5b
#    as bench/peers/model-pair.sh does) and runs, REPS times, ours then exact right after each
#    other: moeserve-decode-bench --batch 1 --prompt-len 512 --steps 64 (prefill of 512 tokens, then
#    batch-1 decode), and --batch 16 --prompt-len 128 --steps 32 (batched decode);
# 4. prints the medians (range in brackets), ours over exact, and the load average.
#
# Without AVX512_BF16 both sides run the exact path (ratios ~1). Everything but the measured
# processes runs under `nice -n 10`; the machine is shared: compare the ratios.
# Environment: THREADS (2), REPS (3), BATCHES (1,16,64,256), ROUNDS (3), BUILD_DIR, SKIP_BUILD=1,
# MOESERVE_TEST_DATA (../shared/data), MOESERVE_PEERS_CACHE (~/.cache/moeserve-peers).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
threads="${THREADS:-2}"
reps="${REPS:-3}"
data="${MOESERVE_TEST_DATA:-$root/../shared/data}"
models="${MOESERVE_PEERS_CACHE:-$HOME/.cache/moeserve-peers}/models"
log() { echo "cpu_bf16_gemm: $*" >&2; }

if [[ "${SKIP_BUILD:-0}" == "1" ]]; then
  log "using the binaries in $build_dir/bin (SKIP_BUILD=1)"
else
  BUILD_DIR="$build_dir" JOBS="${JOBS:-2}" nice -n 10 "$root/scripts/build.sh" >&2
fi
bin="$build_dir/bin"
if grep -qw avx512_bf16 /proc/cpuinfo; then
  log "CPU has AVX512_BF16"
else
  log "CPU has no AVX512_BF16: both sides run the exact path"
fi

echo "== per product (2.) =="
if [[ -x "$bin/moeserve-cpu-gemm-vs-libs" ]]; then
  "$bin/moeserve-cpu-gemm-vs-libs" --threads "$threads" --batches "${BATCHES:-1,16,64,256}" \
    --rounds "${ROUNDS:-3}" --models qwen2
else
  log "$bin/moeserve-cpu-gemm-vs-libs was not built (libopenblas-dev, libdnnl-dev missing?): skipped"
fi

config="$root/bench/configs/qwen2_0_5b.json"
dir="$models/qwen2-0.5b"
if ! cmp -s "$config" "$dir/.source-config.json" 2>/dev/null; then
  [[ -f "$data/tokenizers/qwen3/tokenizer.json" ]] || { log "missing $data/tokenizers/qwen3"; exit 2; }
  log "making $dir"
  mkdir -p "$models"
  rm -rf "$dir" "$models/qwen2-0.5b.gguf"
  nice -n 10 "$bin/moeserve" make-model --config "$config" --out "$dir" --seed 0 --dtype bf16 >&2
  cp "$data/tokenizers/qwen3/tokenizer.json" "$data/tokenizers/qwen3/tokenizer_config.json" "$dir/"
  cp "$config" "$dir/.source-config.json"
fi

# run ARGS...: one decode-bench row; prints "prefill_tok_s decode_tok_s".
run() {
  "$bin/moeserve-decode-bench" --model "$dir" --threads "$threads" "$@" 2>/dev/null |
    awk '$1 ~ /^[0-9]+$/ && NF >= 4 {print $3, $4; exit}'
}
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for rep in $(seq 1 "$reps"); do
  for shape in "1 512 64" "16 128 32"; do
    read -r b p s <<<"$shape"
    for side in ours exact; do
      flag=()
      [[ "$side" == exact ]] && flag=(--exact-gemm)
      log "rep $rep: batch $b, prompt $p: $side"
      echo "$side $b $(run --batch "$b" --prompt-len "$p" --steps "$s" "${flag[@]}")" >>"$results"
    done
  done
done

echo "== end to end (3.), moeserve-decode-bench, $reps reps, threads $threads =="
python3 - "$results" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 4:
        rows[f[0], f[1]].append((float(f[2]), float(f[3])))
def fmt(v):
    return f"{statistics.median(v):.1f} [{min(v):.1f}-{max(v):.1f}]"
print(f"{'row':<34} {'ours':>22} {'exact':>22} {'ours/exact':>10}")
for b, i, name in (("1", 0, "prefill 512 tokens, tok/s"), ("1", 1, "batch-1 decode, tok/s"),
                   ("16", 0, "prefill 16 x 128 tokens, tok/s"), ("16", 1, "batch-16 decode, tok/s")):
    o, e = [r[i] for r in rows["ours", b]], [r[i] for r in rows["exact", b]]
    if not o or not e:
        print(f"{name:<34} (no result: run moeserve-decode-bench by hand to see why)")
        continue
    print(f"{name:<34} {fmt(o):>22} {fmt(e):>22} {statistics.median(o) / statistics.median(e):>10.2f}")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

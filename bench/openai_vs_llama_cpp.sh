#!/usr/bin/env bash
# moeserve's OpenAI HTTP API against llama.cpp's llama-server (built from source) on the same
# weights, with the same client (moeserve-bench --backend openai-completions) and the same load,
# taken in turn REPS times; moeserve's gRPC front end rides along under the same load (results in
# docs/PERF.md). From a clean clone:
#
#   bench/openai_vs_llama_cpp.sh          # REPS=3 STREAMS=16
#
# 1. builds moeserve (scripts/build.sh) and llama.cpp (bench/peers/build-llama-cpp.sh, cached
#    under ~/.cache/moeserve-peers);
# 2. makes a random bf16 Qwen2-0.5B (bench/configs/qwen2_0_5b.json, `moeserve make-model`) with
#    the Qwen3 tokenizer from the shared test data and its GGUF twin (bench/peers/model-pair.sh,
#    cached beside llama.cpp; the same pair bench/cpu_vs_llama_cpp.sh uses);
# 3. starts both servers with the same KV capacity (STREAMS x 256 tokens: llama-server -np STREAMS
#    -c STREAMS*256; moeserve --max-model-len 256 and as many 16-token blocks) and CPU threads;
# 4. per repetition, one after the other: moeserve over HTTP, llama-server over HTTP, moeserve over
#    gRPC; each STREAMS concurrent streams of random token-id prompts (INPUT_LEN in, OUTPUT_LEN
#    out, EOS ignored, greedy), REQUESTS requests after STREAMS warm-up ones; each server's CPU time
#    is read around its runs;
# 5. prints the medians and the ratios to moeserve over HTTP, and the load average.
#
# Environment: REPS (3), STREAMS (16), INPUT_LEN (128), OUTPUT_LEN (128), REQUESTS (2 x STREAMS),
# THREADS (2), BUILD_DIR, MOESERVE_TEST_DATA (../shared/data), MOESERVE_PEERS_CACHE, KEEP_LOGS=DIR.
# Runs under `nice -n 10`; the machine may be shared: compare the ratios, not the absolute figures.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
reps="${REPS:-3}"
streams="${STREAMS:-16}"
input_len="${INPUT_LEN:-128}"
output_len="${OUTPUT_LEN:-128}"
requests="${REQUESTS:-$((2 * streams))}"
threads="${THREADS:-2}"
build_dir="${BUILD_DIR:-$root/build}"
logs="${KEEP_LOGS:-$(mktemp -d)}"
mkdir -p "$logs"
log() { echo "openai_vs_llama_cpp: $*" >&2; }

log "building moeserve"
BUILD_DIR="$build_dir" JOBS="${JOBS:-2}" nice -n 10 "$root/scripts/build.sh" >&2
bin="$build_dir/bin"
eval "$("$root/bench/peers/build-llama-cpp.sh" | grep '^LLAMA_')"
source "$root/bench/serving/lib.sh"

name=qwen2-0.5b
eval "$(LLAMA_CONVERT="$LLAMA_CONVERT" "$root/bench/peers/model-pair.sh" "$bin/moeserve" "$name" qwen2_0_5b qwen3 |
        grep '^MODEL_')"
dir="$MODEL_DIR"
gguf="$MODEL_GGUF"

ctx=256
ms_grpc=$(free_port)
ms_http=$(free_port)
nice -n 10 "$bin/moeserve" serve --model "$dir" --served-model-name "$name" --threads "$threads" \
  --host 127.0.0.1 --port "$ms_grpc" --http-port "$ms_http" --max-model-len "$ctx" \
  --max-num-seqs "$streams" --num-kv-blocks "$((streams * ctx / 16 + 1))" >"$logs/moeserve.log" 2>&1 &
moeserve=$!
ll_http=$(free_port)
nice -n 10 "$LLAMA_SERVER" -m "$gguf" --alias "$name" -t "$threads" -tb "$threads" -np "$streams" \
  -c "$((streams * ctx))" --host 127.0.0.1 --port "$ll_http" >"$logs/llama-server.log" 2>&1 &
llama=$!
trap 'stop_pid $moeserve; stop_pid $llama' EXIT
wait_healthy "$moeserve" "http://127.0.0.1:$ms_http/health" || { tail "$logs/moeserve.log" >&2; exit 1; }
wait_healthy "$llama" "http://127.0.0.1:$ll_http/health" || { tail "$logs/llama-server.log" >&2; exit 1; }

common=(--dataset random --vocab-size "$(model_vocab "$dir")" --input-len "$input_len"
        --output-len "$output_len" --num-requests "$requests" --max-concurrency "$streams"
        --warmup "$streams" --model "$name" --no-progress)
runs=()
for rep in $(seq 1 "$reps"); do
  for side in moeserve-http llama-server-http moeserve-grpc; do
    case $side in
      moeserve-http) pid=$moeserve; target=(--backend openai-completions --base-url "http://127.0.0.1:$ms_http/v1") ;;
      llama-server-http) pid=$llama; target=(--backend openai-completions --base-url "http://127.0.0.1:$ll_http/v1") ;;
      moeserve-grpc) pid=$moeserve; target=(--backend grpc --addr "127.0.0.1:$ms_grpc") ;;
    esac
    log "rep $rep: $side"
    runs+=("$(bench_run "$side" "$pid" "$logs/$side-$rep.json" "$bin/moeserve-bench" \
              "${target[@]}" "${common[@]}" --seed "$rep")")
  done
done

echo "$name (random bf16 weights), $threads threads each, $streams streams, $input_len in / $output_len out, $requests requests"
python3 "$root/bench/serving/summarize.py" "${runs[@]}"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); logs in $logs"

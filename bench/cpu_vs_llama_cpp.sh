#!/usr/bin/env bash
# moeserve's CPU backend against llama.cpp on the same weights, side by side, in one run
# (issue 20; results in docs/PERF.md). From a clean clone:
#
#   bench/cpu_vs_llama_cpp.sh            # REPS=3 THREADS=2
#
# 1. builds moeserve (scripts/build.sh into $BUILD_DIR, default build/) and llama.cpp from source
#    (bench/peers/build-llama-cpp.sh, cached under ~/.cache/moeserve-peers);
# 2. makes two random bf16 models with `moeserve make-model` (bench/configs/qwen2_0_5b.json, and
#    deepseek_v2_lite_4l.json: DeepSeek-V2-Lite with 4 layers, 64 experts) with tokenizers from the
#    shared test data, and converts both to GGUF (bf16) with llama.cpp's convert_hf_to_gguf.py
#    (bench/peers/model-pair.sh, cached);
# 3. runs, REPS times, each side right after the other (interleaved, so both see the same load):
#    - batch-1 prefill of 512 tokens and decode of 64 tokens after it
#      (moeserve-decode-bench --batch 1 --prompt-len 512 --steps 64; llama-bench -p 512 and
#      -n 64 -d 512), with the bench process's peak RSS (/usr/bin/time);
#    - dense model only: serving 16 concurrent streams x (128 in, 128 out) through each server
#      (bench/peers/serve_load.py: gRPC to moeserve, HTTP to llama-server), output tokens/s, TTFT
#      median, and the server's peak RSS (VmHWM) after the run;
#    - start to healthy of each server (exec until its health check answers), dense and MoE;
#    then once: `moeserve serve --model` on the dense model (32k context) with default flags;
# 4. prints one table of medians (range in brackets) and the ratios, and the load average.
#
# Environment: REPS (3), THREADS (2), BUILD_DIR, MOESERVE_TEST_DATA (../shared/data),
# MOESERVE_PEERS_CACHE (~/.cache/moeserve-peers), SKIP_MOE=1 (dense only), KEEP_LOGS=DIR,
# SKIP_BUILD=1 (use the binaries already in $BUILD_DIR/bin, e.g. to compare two builds).
# Everything runs under `nice -n 10` except the measured processes' relative order; the machine is
# shared, so compare the ratio, not the absolute figures.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
reps="${REPS:-3}"
threads="${THREADS:-2}"
build_dir="${BUILD_DIR:-$root/build}"
data="${MOESERVE_TEST_DATA:-$root/../shared/data}"
cache="${MOESERVE_PEERS_CACHE:-$HOME/.cache/moeserve-peers}"
models="$cache/models"
logs="${KEEP_LOGS:-$(mktemp -d)}"
mkdir -p "$models" "$logs"
log() { echo "cpu_vs_llama_cpp: $*" >&2; }

for tok in qwen3 deepseek_v3; do
  if [[ ! -f "$data/tokenizers/$tok/tokenizer.json" ]]; then
    log "missing $data/tokenizers/$tok (set MOESERVE_TEST_DATA)"
    exit 2
  fi
done

if [[ "${SKIP_BUILD:-0}" == "1" ]]; then
  log "using the moeserve binaries in $build_dir/bin (SKIP_BUILD=1)"
else
  log "building moeserve"
  BUILD_DIR="$build_dir" JOBS="${JOBS:-2}" "$root/scripts/build.sh" >&2
fi
moeserve="$build_dir/bin/moeserve"
decode_bench="$build_dir/bin/moeserve-decode-bench"
eval "$("$root/bench/peers/build-llama-cpp.sh" | grep '^LLAMA_')"

# name config tokenizer
model_specs=("qwen2-0.5b qwen2_0_5b.json qwen3")
[[ "${SKIP_MOE:-0}" == "1" ]] || model_specs+=("v2-lite-4l deepseek_v2_lite_4l.json deepseek_v3")
for spec in "${model_specs[@]}"; do
  read -r name config tok <<<"$spec"
  LLAMA_CONVERT="$LLAMA_CONVERT" "$root/bench/peers/model-pair.sh" "$moeserve" "$name" "${config%.json}" \
    "$tok" >/dev/null
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
vocab_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vocab_size"])' "$1/config.json"; }

# Runs a command under /usr/bin/time; appends "rss_kib=N" to its output file.
timed() {
  local out="$1"
  shift
  /usr/bin/time -f "rss_kib=%M" -o "$out.time" "$@" >"$out" 2>&1
  cat "$out.time" >>"$out"
}

# start_server NAME OUT -- CMD...: starts CMD in the background, waits until it is healthy and
# prints "pid seconds" (start to healthy).
wait_healthy() {
  local pid="$1" url="$2" t0="$3"
  for _ in $(seq 1 1200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "died"
      return 1
    fi
    if curl -sf -o /dev/null "$url"; then
      python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$t0"
      return 0
    fi
    sleep 0.05
  done
  echo "timeout"
  return 1
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
vmhwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# serve_side SIDE MODEL REP PORT HEALTH_URL CMD...: starts the server, records start to healthy,
# runs the serving load on the dense model, records the server's peak RSS, stops it.
serve_side() {
  local side="$1" name="$2" rep="$3" port="$4" url="$5"
  shift 5
  local t0 pid startup
  t0=$(date +%s.%N)
  "$@" >"$logs/serve-$side-$name-$rep.log" 2>&1 &
  pid=$!
  startup=$(wait_healthy "$pid" "$url" "$t0") || { tail "$logs/serve-$side-$name-$rep.log" >&2; exit 1; }
  record "$name $side startup_s $startup"
  if [[ "$name" == qwen2* ]]; then
    log "rep $rep: $name: $side serving"
    local out="$logs/load-$side-$name-$rep.json"
    python3 "$root/bench/peers/serve_load.py" --server "$side" --addr "127.0.0.1:$port" \
      --streams 16 --input-len 128 --output-len 128 --vocab-size "$(vocab_of "$models/$name")" >"$out"
    record "$name $side serve_tok_s $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["output_tok_s"])' "$out")"
    record "$name $side ttft_s $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ttft_median_s"])' "$out")"
  fi
  record "$name $side server_rss_gib $(awk -v k="$(vmhwm "$pid")" 'BEGIN {printf "%.2f", k/1048576}')"
  stop "$pid"
}

results="$logs/results.txt"
: >"$results"
record() { echo "$*" >>"$results"; }

for rep in $(seq 1 "$reps"); do
  for spec in "${model_specs[@]}"; do
    read -r name _ _ <<<"$spec"
    dir="$models/$name"
    gguf="$models/$name.gguf"
    log "rep $rep: $name: moeserve-decode-bench"
    timed "$logs/ms-bench-$name-$rep" "$decode_bench" --model "$dir" --batch 1 --prompt-len 512 \
      --steps 64 --threads "$threads"
    row=$(awk '$1 == "1" && $2 == "off" {print $3, $4}' "$logs/ms-bench-$name-$rep")
    rss=$(sed -n 's/^rss_kib=//p' "$logs/ms-bench-$name-$rep")
    record "$name moeserve prefill $(cut -d' ' -f1 <<<"$row")"
    record "$name moeserve decode $(cut -d' ' -f2 <<<"$row")"
    record "$name moeserve bench_rss_gib $(awk -v k="$rss" 'BEGIN {printf "%.2f", k/1048576}')"

    log "rep $rep: $name: llama-bench"
    timed "$logs/ll-bench-$name-$rep" "$LLAMA_BENCH" -m "$gguf" -t "$threads" -p 512 -n 0 -r 1 -o jsonl
    record "$name llama prefill $(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][0]["avg_ts"])' "$logs/ll-bench-$name-$rep")"
    rss_p=$(sed -n 's/^rss_kib=//p' "$logs/ll-bench-$name-$rep")
    timed "$logs/ll-bench-tg-$name-$rep" "$LLAMA_BENCH" -m "$gguf" -t "$threads" -p 0 -n 64 -d 512 -r 1 -o jsonl
    record "$name llama decode $(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][0]["avg_ts"])' "$logs/ll-bench-tg-$name-$rep")"
    rss_t=$(sed -n 's/^rss_kib=//p' "$logs/ll-bench-tg-$name-$rep")
    record "$name llama bench_rss_gib $(awk -v a="$rss_p" -v b="$rss_t" 'BEGIN {m = a > b ? a : b; printf "%.2f", m/1048576}')"

    # Servers: start to healthy (both models), serving load (dense only).
    # KV capacity: moeserve 4096 tokens (257 blocks of 16 with the null block), 256 per request;
    # llama-server splits -c over its 16 slots and needs a little more than 256 per slot (it adds
    # BOS and stops one position short of a full slot: with -c 4096 the last token is cut), so it
    # gets 272 per slot.
    port=$(free_port)
    mport=$(free_port)
    serve_side moeserve "$name" "$rep" "$port" "http://127.0.0.1:$mport/health" \
      "$moeserve" serve --model "$dir" --threads "$threads" --port "$port" --metrics-port "$mport" --http-port 0 \
      --max-model-len 256 --num-kv-blocks 257
    port=$(free_port)
    serve_side llama "$name" "$rep" "$port" "http://127.0.0.1:$port/health" \
      "$LLAMA_SERVER" -m "$gguf" -t "$threads" -tb "$threads" -np 16 -c 4352 --host 127.0.0.1 --port "$port"
  done
  log "rep $rep done, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  record "loadavg $(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ',')"
done

# The dense model has a 32k context (max_position_embeddings 32768): `serve` must start with
# default flags, sizing the KV cache itself (and capping the context if it cannot hold it).
port=$(free_port)
mport=$(free_port)
t0=$(date +%s.%N)
"$moeserve" serve --model "$models/qwen2-0.5b" --port "$port" --metrics-port "$mport" --http-port 0 \
  >"$logs/ms-serve-defaults.log" 2>&1 &
pid=$!
if startup=$(wait_healthy "$pid" "http://127.0.0.1:$mport/health" "$t0"); then
  record "qwen2-0.5b moeserve defaults_start_s $startup"
  default_start="started with default flags in ${startup} s: $(grep -ho 'KV cache: .*\|max_model_len capped.*' "$logs/ms-serve-defaults.log" | tr '\n' ' ')"
else
  default_start="did NOT start with default flags: $(tail -3 "$logs/ms-serve-defaults.log" | tr '\n' ' ')"
fi
stop "$pid"

python3 "$root/bench/peers/summarize.py" "$results" --threads "$threads" --reps "$reps"
echo
echo "32k-context model, moeserve serve --model DIR (no other flags): $default_start"
log "logs in $logs"

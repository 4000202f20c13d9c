#!/usr/bin/env bash
# moeserve's two streaming front ends side by side: one server, one client (moeserve-bench), one
# load, over gRPC (Generate) and over OpenAI's HTTP API (/v1/completions, server-sent events),
# taken in turn REPS times (results in docs/PERF.md). From a clean clone:
#
#   bench/grpc_vs_http.sh                 # REPS=3 STREAMS=256
#
# 1. builds moeserve (scripts/build.sh into $BUILD_DIR, default build/);
# 2. serves MODEL (default: the embedded models/default, so the engine's share is small and the
#    front ends' is visible) with both front ends, all STREAMS requests running at once;
# 3. runs moeserve-bench REPS times per protocol, alternating: STREAMS concurrent streams, random
#    token-id prompts of INPUT_LEN tokens, OUTPUT_LEN tokens each (ignore_eos), REQUESTS requests,
#    STREAMS warm-up requests first; reads the server's CPU time (utime + stime) around each run;
# 4. prints the medians and the HTTP/gRPC ratios (bench/serving/summarize.py) and the load average.
#
# Environment: REPS (3), STREAMS (256), INPUT_LEN (32), OUTPUT_LEN (64), REQUESTS (4 x STREAMS),
# MODEL, THREADS (server CPU threads, 0 = all), BUILD_DIR, KEEP_LOGS=DIR. The machine may be
# shared: compare the ratio, not the absolute figures.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
reps="${REPS:-3}"
streams="${STREAMS:-256}"
input_len="${INPUT_LEN:-32}"
output_len="${OUTPUT_LEN:-64}"
requests="${REQUESTS:-$((4 * streams))}"
model="${MODEL:-$root/models/default}"
build_dir="${BUILD_DIR:-$root/build}"
logs="${KEEP_LOGS:-$(mktemp -d)}"
mkdir -p "$logs"
log() { echo "grpc_vs_http: $*" >&2; }

log "building moeserve"
BUILD_DIR="$build_dir" JOBS="${JOBS:-2}" "$root/scripts/build.sh" >&2
bin="$build_dir/bin"
source "$root/bench/serving/lib.sh"

vocab=$(model_vocab "$model")
grpc_port=$(free_port)
http_port=$(free_port)
"$bin/moeserve" serve --model "$model" --threads "${THREADS:-0}" --host 127.0.0.1 \
  --port "$grpc_port" --http-port "$http_port" --max-num-seqs "$streams" \
  --max-queued-requests "$((2 * requests))" >"$logs/server.log" 2>&1 &
server=$!
trap 'stop_pid $server' EXIT
wait_healthy "$server" "http://127.0.0.1:$http_port/health" || { tail "$logs/server.log" >&2; exit 1; }

common=(--dataset random --vocab-size "$vocab" --input-len "$input_len" --output-len "$output_len"
        --num-requests "$requests" --max-concurrency "$streams" --warmup "$streams" --no-progress)
runs=()
for rep in $(seq 1 "$reps"); do
  for proto in grpc http; do
    if [[ $proto == grpc ]]; then
      target=(--backend grpc --addr "127.0.0.1:$grpc_port" --connections 4)
    else
      target=(--backend openai-completions --base-url "http://127.0.0.1:$http_port/v1")
    fi
    log "rep $rep: $proto"
    runs+=("$(bench_run "$proto" "$server" "$logs/$proto-$rep.json" "$bin/moeserve-bench" \
              "${target[@]}" "${common[@]}" --seed "$rep")")
  done
done

echo "moeserve gRPC vs HTTP streaming: $(basename "$model"), $streams streams, $input_len in / $output_len out, $requests requests"
python3 "$root/bench/serving/summarize.py" "${runs[@]}"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); logs in $logs"

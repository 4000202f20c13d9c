# Shell helpers shared by the serving benchmarks (bench/grpc_vs_http.sh,
# bench/openai_vs_llama_cpp.sh). Source it; it defines functions only.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

model_vocab() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vocab_size"])' "$1/config.json"; }

# CPU seconds (user + system) a process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

# wait_healthy PID URL: until URL answers 2xx (up to 10 minutes); fails when PID exits.
wait_healthy() {
  local pid="$1" url="$2"
  for _ in $(seq 1 12000); do
    kill -0 "$pid" 2>/dev/null || return 1
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.05
  done
  return 1
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# bench_run LABEL SERVER_PID OUT_JSON BENCH [ARGS...]: runs moeserve-bench with ARGS and --json
# OUT_JSON (its report beside it, .txt) and prints "LABEL=OUT_JSON@CPU" for summarize.py, CPU being
# the seconds of CPU the server used during the run. Exits the script when the run fails.
bench_run() {
  local label="$1" pid="$2" out="$3" bench="$4"
  shift 4
  local cpu0 cpu1
  cpu0=$(cpu_seconds "$pid")
  "$bench" "$@" --json "$out" >"${out%.json}.txt" 2>&1 || { cat "${out%.json}.txt" >&2; exit 1; }
  cpu1=$(cpu_seconds "$pid")
  echo "$label=$out@$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}')"
}

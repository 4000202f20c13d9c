#!/usr/bin/env bash
# A bounded soak of `moeserve serve` (not run by CI). Starts the server on free ports with the
# default model (or MODEL), then for DURATION seconds keeps CONCURRENCY streamed OpenAI
# completions in flight: about 30% are cancelled at a random point (the client closes the
# connection mid-stream), 10% get a short client deadline, 10% are clients that are killed
# (SIGKILL of a child process mid-stream); the rest run to the end. Every 10 s it samples the
# server's RSS, open descriptors and KV blocks in use (/metrics).
# At the end it waits for the server to go idle and checks:
#   - KV blocks in use return to 0;
#   - RSS does not trend up: the last quarter's median is within RSS_GROWTH_PCT (default 10%) of
#     the median of the second quarter (the first is warm-up);
#   - open descriptors return to within 16 of the idle count before the load;
#   - the server is alive and /health answers 200.
# Prints one summary line ("soak: PASS ..." or "soak: FAIL ...") and exits 0 only on PASS.
# Usage: scripts/soak.sh [DURATION_S (default 300)]
# Environment: CONCURRENCY (16), MODEL (models/default), BUILD_DIR (build), THREADS (2),
#              RSS_GROWTH_PCT (10), SEED (1), MAX_TOKENS (128), LOG (a temp file).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
duration="${1:-300}"
build="${BUILD_DIR:-$root/build}"
bin="$build/bin/moeserve"
[[ -x "$bin" ]] || { echo "soak: no $bin (run scripts/build.sh first)" >&2; exit 2; }
log="${LOG:-$(mktemp "${TMPDIR:-/tmp}/moeserve-soak.XXXXXX.log")}"

http_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin" serve --model "${MODEL:-$root/models/default}" --port 0 --http-port "$http_port" --metrics-port -1 \
  --threads "${THREADS:-2}" --shutdown-timeout 10 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
port=""
for _ in $(seq 1 600); do
  port="$(grep -o 'OpenAI API on http://[0-9.]*:[0-9]*' "$log" | head -1 | grep -o '[0-9]*$' || true)"
  [[ -n "$port" ]] && break
  kill -0 "$server" 2>/dev/null || { echo "soak: FAIL the server did not start; log $log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$port" ]] || { echo "soak: FAIL no port after 60 s; log $log" >&2; exit 1; }

status=0
python3 - "$server" "$port" "$duration" <<'PY' || status=$?
import http.client, json, os, random, signal, statistics, subprocess, sys, threading, time

pid, port, duration = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
concurrency = int(os.environ.get("CONCURRENCY", "16"))
max_tokens = int(os.environ.get("MAX_TOKENS", "128"))
growth_pct = float(os.environ.get("RSS_GROWTH_PCT", "10"))
rng = random.Random(int(os.environ.get("SEED", "1")))
rng_lock = threading.Lock()
counts = {k: 0 for k in ("completed", "cancelled", "deadline", "killed", "refused", "errors")}
counts_lock = threading.Lock()
words = "the a little girl dog park ball sun tree happy ran saw big red blue".split()

def count(kind):
    with counts_lock:
        counts[kind] += 1

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))

def metric(name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return float("nan")

def health():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/health")
    status = c.getresponse().status
    c.close()
    return status

def body():
    with rng_lock:
        prompt = " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
        n_tokens = rng.randint(1, max_tokens)
        return json.dumps({"model": "default", "prompt": prompt, "max_tokens": n_tokens,
                           "stream": True, "temperature": 1.0})

# The killed-client kind: a child process streams a completion and is SIGKILLed mid-stream.
CHILD = r'''
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
c.request("POST", "/v1/completions", body=sys.argv[2], headers={"Content-Type": "application/json"})
r = c.getresponse()
while r.read1(256):
    pass
'''

def one():
    with rng_lock:
        x = rng.random()
        cut = rng.randint(1, 20)
        kill_after = rng.uniform(0.05, 1.0)
    if x < 0.10:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(port), body()])
        time.sleep(kill_after)
        child.send_signal(signal.SIGKILL)
        child.wait()
        count("killed")
        return
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=0.3 if x < 0.20 else 120)
        c.request("POST", "/v1/completions", body=body(), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status == 429:
            r.read(); c.close(); count("refused"); return
        if r.status != 200:
            r.read(); c.close(); count("errors"); return
        chunks = 0
        while True:
            line = r.fp.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                chunks += 1
                if line.strip() == b"data: [DONE]":
                    break
                if 0.20 <= x < 0.50 and chunks >= cut:  # cancelled: close mid-stream
                    c.close()
                    count("cancelled")
                    return
        c.close()
        count("completed")
    except TimeoutError:
        count("deadline")
    except OSError:
        count("deadline" if x < 0.20 else "errors")

def worker(stop_at):
    while time.monotonic() < stop_at:
        one()

idle_fds = fds()
start = time.monotonic()
stop_at = start + duration
threads = [threading.Thread(target=worker, args=(stop_at,), daemon=True) for _ in range(concurrency)]
for t in threads:
    t.start()
samples = []  # (t, rss KiB, fds, kv blocks used)
while any(t.is_alive() for t in threads):
    samples.append((time.monotonic() - start, rss_kib(), fds(), metric("moeserve_kv_cache_blocks_used")))
    time.sleep(10 if time.monotonic() < stop_at else 1)
for t in threads:
    t.join()

# Idle: KV blocks and descriptors come back.
deadline = time.monotonic() + 60
kv = metric("moeserve_kv_cache_blocks_used")
while kv != 0 and time.monotonic() < deadline:
    time.sleep(1)
    kv = metric("moeserve_kv_cache_blocks_used")
end_fds = fds()
end_rss = rss_kib()
problems = []
if kv != 0:
    problems.append(f"{kv:.0f} KV blocks still in use when idle")
q = max(1, len(samples) // 4)
early = statistics.median(s[1] for s in samples[q:2 * q]) if len(samples) >= 4 else samples[0][1]
late = statistics.median(s[1] for s in samples[-q:])
growth = 100.0 * (late - early) / max(1, early)
if len(samples) >= 4 and growth > growth_pct:
    problems.append(f"RSS grew {growth:.1f}% (> {growth_pct}%)")
if end_fds > idle_fds + 16:
    problems.append(f"{end_fds} descriptors open when idle, {idle_fds} before the load")
try:
    if health() != 200:
        problems.append("/health is not 200")
except OSError as e:
    problems.append(f"/health: {e}")
total = sum(counts.values())
verdict = "PASS" if not problems else "FAIL " + "; ".join(problems)
print(f"soak: {verdict} | {duration:.0f} s, {total} requests ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
      f"RSS {samples[0][1] // 1024} -> {end_rss // 1024} MiB (median {early // 1024} -> {late // 1024}, {growth:+.1f}%); "
      f"fds {idle_fds} idle -> {max(s[2] for s in samples)} max -> {end_fds}; KV blocks used at end {kv:.0f}; "
      f"refused_total {metric('moeserve_requests_refused_total'):.0f}", flush=True)
sys.exit(0 if not problems else 1)
PY
kill -TERM "$server"
wait "$server" || { echo "soak: FAIL the server exited $? after SIGTERM; log $log" >&2; exit 1; }
trap - EXIT
exit "$status"

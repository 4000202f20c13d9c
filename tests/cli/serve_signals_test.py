#!/usr/bin/env python3
"""`moeserve serve` shutdown bounds, with the real binary and clients that stop reading.

1. A second SIGTERM during a drain exits at once with 128 + 15 (it used to wait out the drain).
2. With --shutdown-timeout T and clients that never read their streams, the process exits within
   T + the documented margin (5 s) + slack for a loaded machine (it once took 20 s for T = 5).

  serve_signals_test.py --moeserve BIN --model DIR
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

MARGIN_S = 5.0  # server/api/serve.h: kShutdownMargin
SLACK_S = 5.0   # process exit and a loaded CI machine


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(moeserve, model, timeout_s):
    err = tempfile.NamedTemporaryFile(prefix="serve-signals", suffix=".log", delete=False)
    proc = subprocess.Popen([moeserve, "serve", "--model", model, "--port", "0",
                             "--http-port", str(free_port()),
                             "--metrics-port", "-1", "--threads", "1", "--max-num-seqs", "1",
                             "--max-queued-requests", "0", "--shutdown-timeout", str(timeout_s)],
                            stderr=err, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with open(err.name) as f:
            m = re.search(r"OpenAI API on http://127\.0\.0\.1:(\d+)", f.read())
        if m:
            return proc, int(m.group(1)), err.name
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"the server did not start; log {err.name}")


def stalled_clients(port, count):
    """`count` streamed completions whose clients never read a byte of the answer."""
    body = ('{"model": "default", "prompt": "Once upon a time", "max_tokens": 400, "ignore_eos": true, '
            '"stream": true, "n": 4, "logprobs": 5}')
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
        socks.append(s)
    return socks


def running(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    m = re.search(rb"^moeserve_requests_running (\S+)", data, re.M)
    return float(m.group(1)) if m else 0.0


def wait_exit(proc, limit_s):
    start = time.monotonic()
    try:
        code = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, time.monotonic() - start
    return code, time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moeserve", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    failures = []

    # 1. Second SIGTERM during a long drain.
    proc, port, log = start(args.moeserve, args.model, 120)
    socks = stalled_clients(port, 20)
    deadline = time.monotonic() + 60
    while running(port) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    if proc.poll() is not None:
        failures.append(f"second signal: the drain ended before the second SIGTERM (exit {proc.returncode})")
    else:
        proc.send_signal(signal.SIGTERM)
        code, took = wait_exit(proc, 10)
        if code != 128 + signal.SIGTERM:
            failures.append(f"second signal: exit {code} after {took:.1f} s, want {128 + signal.SIGTERM} at once")
        else:
            print(f"second SIGTERM: exit {code} after {took:.2f} s")
    for s in socks:
        s.close()

    # 2. The drain bound holds with stalled clients.
    timeout_s = 2
    proc, port, log = start(args.moeserve, args.model, timeout_s)
    socks = stalled_clients(port, 20)
    deadline = time.monotonic() + 60
    while running(port) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    code, took = wait_exit(proc, timeout_s + MARGIN_S + SLACK_S)
    if code is None:
        failures.append(f"drain bound: still running {took:.1f} s after SIGTERM with "
                        f"--shutdown-timeout {timeout_s} (bound {timeout_s + MARGIN_S} s); log {log}")
    else:
        print(f"stalled clients, --shutdown-timeout {timeout_s}: exit {code} after {took:.2f} s")
    for s in socks:
        s.close()

    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

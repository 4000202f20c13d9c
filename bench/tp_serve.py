#!/usr/bin/env python3
"""The step broadcast of a serving tensor-parallel group: what rank 0 sends each step and what it
costs (issue 15). Run by bench/tp_serve.sh, which builds moeserve and makes the model.

For each concurrency, starts `mpirun -np TP moeserve serve --tensor-parallel-size TP` (one thread
per rank), drives it with moeserve-bench over gRPC, and reads rank 0's /metrics before and after:
steps, step messages (bytes: mean and the largest), host broadcasts, rank 0's time encoding and
sending them per step, and their share of the engine's step time. Standard library only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

# The group test's helpers: a free port, and rank 0's unlabelled /metrics series.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "dist"))
from group_serve_test import free_port, scrape_metrics as metrics  # noqa: E402


def wait_healthy(http_port, proc, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"tp_serve: the group exited {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("tp_serve: the group did not become healthy")


def run_one(args, concurrency, log_dir):
    port, http_port = free_port(), free_port()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpirun", "--oversubscribe", "-np", str(args.tp), args.moeserve, "serve", "--model", args.model,
           "--tensor-parallel-size", str(args.tp), "--threads", "1", "--port", str(port), "--http-port",
           str(http_port), "--metrics-port", "-1", "--max-model-len", str(args.input_len + args.output_len + 16),
           "--max-num-seqs", str(max(concurrency, 1))]
    log = open(os.path.join(log_dir, f"group.c{concurrency}.log"), "w")
    group = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_healthy(http_port, group, 300)
        before = metrics(http_port)
        out_json = os.path.join(log_dir, f"bench.c{concurrency}.json")
        subprocess.run([args.bench, "--addr", f"127.0.0.1:{port}", "--num-requests", str(args.requests * concurrency),
                        "--input-len", str(args.input_len), "--output-len", str(args.output_len), "--range-ratio",
                        "0", "--ignore-eos", "--max-concurrency", str(concurrency), "--seed", "1", "--json", out_json],
                       check=True, stdout=subprocess.DEVNULL)
        after = metrics(http_port)
        with open(out_json) as f:
            summary = json.load(f)["runs"][0]["summary"]
    finally:
        os.killpg(group.pid, 15)
        try:
            group.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(group.pid, 9)
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    if summary.get("failed", 0) != 0:
        sys.exit(f"tp_serve: {summary['failed']} requests failed (logs in {log_dir})")
    steps, messages = d["moeserve_engine_steps_total"], d["moeserve_step_broadcast_messages_total"]
    encode, send = d["moeserve_step_broadcast_encode_seconds_total"], d["moeserve_step_broadcast_send_seconds_total"]
    step_s = d["moeserve_engine_step_seconds_total"]
    return (f"| {concurrency} | {steps:.0f} | {d['moeserve_step_broadcast_bytes_total'] / messages:.0f} | "
            f"{after['moeserve_step_broadcast_max_message_bytes']:.0f} | "
            f"{d['moeserve_step_broadcasts_total'] / messages:.2f} | {1e6 * encode / steps:.1f} | "
            f"{1e6 * send / steps:.1f} | {1e3 * step_s / steps:.2f} | {100 * (encode + send) / step_s:.2f}% | "
            f"{summary['output_throughput']:.1f} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--moeserve", required=True)
    p.add_argument("--bench", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--tp", type=int, default=2)
    p.add_argument("--concurrency", default="1,16")
    p.add_argument("--requests", type=int, default=4, help="requests per concurrent stream")
    p.add_argument("--input-len", type=int, default=64)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--logs", default=None)
    args = p.parse_args()
    log_dir = args.logs or tempfile.mkdtemp(prefix="tp_serve.")
    os.makedirs(log_dir, exist_ok=True)
    print(f"TP={args.tp}, one thread per rank; {args.requests} requests per stream of {args.input_len} prompt and "
          f"{args.output_len} output tokens; rank 0's figures per engine step")
    print("| streams | steps | message bytes, mean | largest | broadcasts per message | encode us/step | "
          "send us/step | step ms | broadcast share | output tok/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in [int(x) for x in args.concurrency.split(",")]:
        print(run_one(args, c, log_dir), flush=True)
    print(f"logs in {log_dir}")


if __name__ == "__main__":
    main()

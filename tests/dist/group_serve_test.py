#!/usr/bin/env python3
"""`moeserve serve` as a tensor-parallel group under a real `mpirun`.

Modes:
  bench  moeserve-bench against the group, over gRPC and over the OpenAI HTTP API, ends with 0
         failed requests; SIGTERM to rank 0 drains it and the whole group exits 0.
  kill   rank 1 is SIGKILLed mid-run: the group ends non-zero within the timeout, and rank 0 itself
         names rank 1 as lost (its lifeline closed; mpirun's own report may come before or after).
  hang   rank 1 is stopped (SIGSTOP) mid-run: rank 0's next collective times out, it names rank 1
         as the one not answering, and the group ends non-zero.
Standard library only; exit 0 on success.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deadline:
    """The test's whole time budget (below ctest's TIMEOUT, so a slow or stuck group fails here with
    its output instead of being killed by ctest without it)."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self, cap=None):
        rest = max(1.0, self.end - time.monotonic())
        return rest if cap is None else min(cap, rest)


GROUPS = []  # every group started, killed (whole process tree) on any exit path


def fail(msg, log=""):
    print("FAIL:", msg)
    if log:
        print("---- group output ----\n" + log)
    for g in GROUPS:
        g.kill()
    sys.exit(1)


def descendants(pid):
    """pid's child processes, recursively (from /proc: no dependency on ps)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class Group:
    def __init__(self, args, extra):
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        self.http_port = free_port()
        cmd = [args.mpiexec, "--oversubscribe", "-np", str(args.np), args.moeserve, "serve",
               "--tensor-parallel-size", str(args.np), "--model", args.model, "--port", "0",
               "--http-port", str(self.http_port), "--metrics-port", "-1", "--threads", "1",
               "--collective-timeout", str(args.timeout),
               "--max-num-seqs", "16", "--log-level", "info"] + extra
        print("+", " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                     text=True, start_new_session=True)
        GROUPS.append(self)
        self.lines = []
        self.ready = threading.Event()
        self.port = self.pid = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(r"serving on [\d.]+:(\d+) \(pid (\d+)\)", line)
            if m:
                self.port, self.pid = int(m.group(1)), int(m.group(2))
                self.ready.set()

    def log(self):
        return "".join(self.lines)

    def wait_ready(self, timeout):
        if not self.ready.wait(timeout):
            fail(f"the group did not start serving within {timeout:.0f}s", self.log())

    def follower_pid(self):
        """A rank other than rank 0: a moeserve process under mpirun that is not rank 0."""
        for pid in descendants(self.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            if pid != self.pid and argv[0].endswith("moeserve") and "serve" in argv:
                return pid
        fail("no follower process found", self.log())

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            fail(f"the group did not exit within {timeout:.0f}s", self.log())
        # mpirun prints its own report last: read its output to the end before anyone looks at it.
        self.reader.join(30)
        return rc

    def kill(self):
        """SIGKILL to mpirun, its process group and every descendant (ranks that left the group
        included), so that no rank outlives the test."""
        victims = descendants(self.proc.pid) + [self.proc.pid]
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def http_completions_served(http_port):
    """Whether the server answers POST /v1/completions (the OpenAI API may be partly built)."""
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/completions", data=b"{}",
                                 headers={"content-type": "application/json"}, method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        return True
    except urllib.error.HTTPError as e:
        return "no route" not in e.read().decode(errors="replace")
    except OSError:
        return False


def scrape_metrics(http_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def check_step_broadcast(http_port, log):
    """Rank 0 sent one step message per engine step, each in one or two host broadcasts, and says
    what they cost."""
    m = scrape_metrics(http_port)
    steps = m.get("moeserve_engine_steps_total", 0)
    messages = m.get("moeserve_step_broadcast_messages_total", 0)
    broadcasts = m.get("moeserve_step_broadcasts_total", 0)
    if steps <= 0 or messages < steps or not messages <= broadcasts <= 2 * messages:
        fail(f"step broadcast metrics: steps {steps}, messages {messages}, broadcasts {broadcasts}", log)
    encode = m["moeserve_step_broadcast_encode_seconds_total"]
    seconds = encode + m["moeserve_step_broadcast_send_seconds_total"]
    step_seconds = m["moeserve_engine_step_seconds_total"]
    print(f"step messages: {messages:.0f} for {steps:.0f} steps, "
          f"{m['moeserve_step_broadcast_bytes_total'] / messages:.0f} B mean, "
          f"{m['moeserve_step_broadcast_max_message_bytes']:.0f} B max, {broadcasts:.0f} broadcasts; "
          f"{1e6 * seconds / messages:.1f} us each ({1e6 * encode / messages:.1f} encoding), "
          f"{100 * seconds / step_seconds:.2f}% of step time")


def run_bench(args, port, num_requests, out_json, http_port=None):
    # The default model's vocabulary: 512 (random prompts over HTTP need it).
    target = (["--backend", "openai-completions", "--base-url", f"http://127.0.0.1:{http_port}/v1",
               "--vocab-size", "512", "--model", os.path.basename(os.path.normpath(args.model))]
              if http_port else ["--addr", f"127.0.0.1:{port}"])
    cmd = [args.bench] + target + ["--num-requests", str(num_requests),
           "--input-len", "24", "--output-len", "24", "--range-ratio", "0.5", "--max-concurrency", "8",
           "--seed", "1", "--json", out_json]
    print("+", " ".join(cmd))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mpiexec", required=True)
    p.add_argument("--moeserve", required=True)
    p.add_argument("--bench", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--mode", choices=["bench", "kill", "hang"], required=True)
    p.add_argument("--timeout", type=float, default=3.0, help="--collective-timeout of the group")
    p.add_argument("--budget", type=float, default=240.0,
                   help="seconds the whole test may take (keep below ctest's TIMEOUT)")
    args, extra = p.parse_known_args()
    deadline = Deadline(args.budget)
    try:
        run(args, extra, deadline)
    finally:
        for g in GROUPS:
            if g.proc.poll() is None or descendants(g.proc.pid):
                g.kill()


def run(args, extra, deadline):
    group = Group(args, extra)
    group.wait_ready(deadline.left(150))
    with tempfile.TemporaryDirectory() as tmp:
        out_json = os.path.join(tmp, "bench.json")
        if args.mode == "bench":
            targets = [None]  # gRPC, then the OpenAI HTTP API where it is served
            if http_completions_served(group.http_port):
                targets.append(group.http_port)
            else:
                print("HTTP: this build does not serve /v1/completions yet; the HTTP bench is skipped")
            for http in targets:
                bench = run_bench(args, group.port, 48, out_json, http)
                try:
                    bench_out = bench.communicate(timeout=deadline.left())[0]
                except subprocess.TimeoutExpired:
                    bench.kill()
                    fail("moeserve-bench did not finish in the test's time budget", group.log())
                print(bench_out)
                if bench.returncode != 0:
                    fail(f"moeserve-bench exited {bench.returncode}", group.log())
                with open(out_json) as f:
                    summary = json.load(f)
                s = summary["runs"][0]["summary"]
                if s.get("failed") != 0 or s.get("completed") != 48:
                    fail(f"bench ({'HTTP' if http else 'gRPC'}): completed {s.get('completed')}, "
                         f"failed {s.get('failed')}", group.log())
            if targets[-1] is not None:
                check_step_broadcast(group.http_port, group.log())
            os.kill(group.pid, signal.SIGTERM)
            rc = group.wait(deadline.left(120))
            if rc != 0:
                fail(f"the group exited {rc} after SIGTERM to rank 0", group.log())
            if not re.search(r"rank 1: shutting down after \d+ steps", group.log()):
                fail("rank 1 did not report its shutdown", group.log())
            if "lost rank" in group.log():
                fail("a clean shutdown was taken for a lost rank (no goodbye on a lifeline)", group.log())
            print(f"PASS: 48 requests over {' and '.join('HTTP' if t else 'gRPC' for t in targets)} each, "
                  "0 failed; the group drained and exited 0")
            return

        bench = run_bench(args, group.port, 400, out_json)
        time.sleep(2.0)  # mid-run
        victim = group.follower_pid()
        start = time.time()
        os.kill(victim, signal.SIGKILL if args.mode == "kill" else signal.SIGSTOP)
        limit = deadline.left(60 + args.timeout * 2)
        rc = group.wait(limit)
        elapsed = time.time() - start
        bench.kill()
        bench.wait(30)
        if args.mode == "hang":
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log = group.log()
        if rc == 0:
            fail("the group exited 0 after losing a rank", log)
        pattern = (r"rank 0 of \d+: lost rank 1 \(pid \d+ on .*\): its process ended" if args.mode == "kill"
                   else r"rank 0 of \d+: ending the group: .* did not complete within .*no answer from rank 1")
        if not re.search(pattern, log):
            fail(f"no message matching {pattern!r}", log)
        print(f"PASS: rank 1 {'killed' if args.mode == 'kill' else 'stopped'}; group exited {rc} "
              f"after {elapsed:.1f}s")
    print(group.log()[-2000:])


if __name__ == "__main__":
    main()

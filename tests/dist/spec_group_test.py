#!/usr/bin/env python3
"""Speculative decoding in a tensor-parallel group under a real `mpirun` (2 CPU ranks).

Drafts are decided on rank 0 and travel to rank 1 with the step's batch (step_message.h):
  - greedy: `moeserve generate --tensor-parallel-size 2 --speculative-method ngram` prints exactly
    what plain decoding on one rank prints, for k = 1 and 3, and drafts were verified and accepted
    (--stats), so the verify path really ran across the group;
  - sampled with a seed: the group's speculative output equals one rank's speculative output.
Standard library only; exit 0 on success.
"""

import argparse
import os
import re
import subprocess
import sys

# The default model continues a story; its own repetitions give the n-gram lookup matches.
PROMPT = "Once upon a time"


def fail(msg, log=""):
    print("FAIL:", msg)
    if log:
        print("---- output ----\n" + log)
    sys.exit(1)


def generate(args, extra, np=1, timeout=240):
    cmd = [args.moeserve, "generate", "--model", args.model, "--prompt", PROMPT, "--max-tokens", "96",
           "--threads", "1", "--kv-cache-mib", "16", "--ignore-eos", "--stats"] + extra
    if np > 1:
        cmd = [args.mpiexec, "--oversubscribe", "-np", str(np)] + cmd + ["--tensor-parallel-size", str(np)]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    print("+", " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        fail(f"timed out after {timeout}s", f"{e.stdout or ''}{e.stderr or ''}")
    if p.returncode != 0:
        fail(f"exit {p.returncode}", p.stdout + p.stderr)
    return p.stdout, p.stderr


def drafts(stderr):
    m = re.search(r"speculative: (\d+) drafts verified, (\d+) accepted", stderr)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--moeserve", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()

    plain, _ = generate(args, [])
    if len(plain.strip()) < 50:
        fail("plain decoding printed too little", plain)
    for k in (1, 3):
        out, err = generate(args, ["--speculative-method", "ngram", "--num-speculative-tokens", str(k)], np=2)
        if out != plain:
            fail(f"k={k}: the group's greedy output differs from plain decoding",
                 f"plain:\n{plain}\ngroup:\n{out}\n{err}")
        verified, accepted = drafts(err)
        if verified == 0 or accepted == 0:
            fail(f"k={k}: no drafts verified/accepted in the group ({verified}/{accepted})", err)
        print(f"k={k}: identical greedy output; {accepted} of {verified} drafts accepted")

    sampled = ["--temperature", "0.8", "--seed", "7", "--speculative-method", "ngram",
               "--num-speculative-tokens", "3"]
    one, _ = generate(args, sampled)
    group, err = generate(args, sampled, np=2)
    if one != group:
        fail("sampled with a seed: the group's output differs from one rank's", f"one:\n{one}\ngroup:\n{group}\n{err}")
    print("sampled (seed 7): the group's speculative output equals one rank's")
    print("OK")


if __name__ == "__main__":
    main()

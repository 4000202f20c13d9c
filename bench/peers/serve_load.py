#!/usr/bin/env python3
"""Concurrent-stream load against moeserve (gRPC) or llama.cpp's llama-server (HTTP), measured the
same way on both: N streams start together, each sends one prompt of random token ids and streams
exactly --output-len tokens back (EOS ignored, greedy).

Prints one JSON object: output tokens/s (all output tokens over the wall time from the first send
to the last token), and per-request TTFT (first streamed token) median / min / max in seconds.

  serve_load.py --server moeserve --addr 127.0.0.1:50051 --streams 16 --input-len 128 --output-len 128
  serve_load.py --server llama --addr 127.0.0.1:8080 ...

Prompts depend only on --seed and --vocab-size (ids drawn in [1000, vocab - 1000) so that no special
token appears), so both servers see the same prompts. A warm-up request (8 in, 4 out) runs first.
moeserve's Python client (clients/python) needs grpcio and grpcio-tools (scripts/install-deps.sh).
"""

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_prompts(n, length, vocab, seed):
    rng = random.Random(seed)
    return [[rng.randrange(1000, vocab - 1000) for _ in range(length)] for _ in range(n)]


def stream_moeserve(addr):
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    from moeserve_client import Client  # noqa: E402

    client = Client(addr)

    def run(ids, out_len, on_token):
        for resp in client.generate_stream(token_ids=ids, max_tokens=out_len, ignore_eos=True,
                                           temperature=0.0):
            if resp.token_ids:
                on_token(len(resp.token_ids))

    return run


def stream_llama(addr):
    host, port = addr.rsplit(":", 1)

    def run(ids, out_len, on_token):
        conn = http.client.HTTPConnection(host, int(port), timeout=3600)
        body = json.dumps({"prompt": ids, "n_predict": out_len, "ignore_eos": True,
                           "temperature": 0.0, "stream": True, "cache_prompt": False})
        conn.request("POST", "/completion", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"llama-server: HTTP {resp.status}: {resp.read()[:200]!r}")
        seen = 0
        for raw in resp:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            chunk = json.loads(line[5:])
            if chunk.get("stop"):
                # The final chunk may carry the last token (llama-server sends it with stop when
                # the stream is behind); its tokens_predicted counts every token of the stream.
                late = max(len(chunk.get("tokens") or []), chunk.get("tokens_predicted", 0) - seen)
                if late > 0:
                    on_token(late)
                break
            # One chunk per sampled token (its text may be empty for partial UTF-8).
            n = len(chunk.get("tokens") or [0])
            seen += n
            on_token(n)
        conn.close()

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=["moeserve", "llama"], required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--vocab-size", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    run = stream_moeserve(args.addr) if args.server == "moeserve" else stream_llama(args.addr)
    warm = make_prompts(1, 8, args.vocab_size, args.seed + 1000)[0]
    run(warm, 4, lambda n: None)

    prompts = make_prompts(args.streams, args.input_len, args.vocab_size, args.seed)
    ttft = [None] * args.streams
    tokens = [0] * args.streams
    last = [0.0] * args.streams
    errors = []
    start_barrier = threading.Barrier(args.streams + 1)
    t0 = [0.0]

    def worker(i):
        def on_token(n):
            now = time.monotonic()
            if ttft[i] is None:
                ttft[i] = now - t0[0]
            tokens[i] += n
            last[i] = now
        start_barrier.wait()
        try:
            run(prompts[i], args.output_len, on_token)
        except Exception as e:  # reported, counted as a failed stream
            errors.append(f"stream {i}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.streams)]
    for t in threads:
        t.start()
    t0[0] = time.monotonic()
    start_barrier.wait()
    for t in threads:
        t.join()
    wall = max(last) - t0[0] if any(last) else float("nan")
    got = [x for x in ttft if x is not None]
    result = {
        "server": args.server, "streams": args.streams, "input_len": args.input_len,
        "output_len": args.output_len, "output_tokens": sum(tokens), "wall_s": wall,
        "output_tok_s": sum(tokens) / wall if wall > 0 else 0.0,
        "ttft_median_s": statistics.median(got) if got else None,
        "ttft_min_s": min(got) if got else None, "ttft_max_s": max(got) if got else None,
        "errors": errors,
    }
    print(json.dumps(result))
    if errors or sum(tokens) != args.streams * args.output_len:
        print(f"serve_load: {len(errors)} errors, {sum(tokens)} of "
              f"{args.streams * args.output_len} tokens", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

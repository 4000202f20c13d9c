#!/usr/bin/env python3
"""Streams a completion from a moeserve server, then prints the usage. With --n > 1 it waits for
all n completions and prints each as "[index] text", like moeserve-cli --n.

    python3 clients/python/examples/generate.py --addr 127.0.0.1:50051 "Once upon a time"
    python3 clients/python/examples/generate.py --n 3 --temperature 1 "Once upon a time"
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import grpc  # noqa: E402

from moeserve_client import Client  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("prompt")
    p.add_argument("--addr", default="127.0.0.1:50051")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--n", type=int, default=1, help="completions of the prompt")
    p.add_argument("--api-key", default=os.environ.get("MOESERVE_API_KEY"))
    args = p.parse_args()
    with Client(args.addr, api_key=args.api_key) as client:
        try:
            if args.n > 1:
                completions = client.generate_all(args.prompt, max_tokens=args.max_tokens,
                                                  temperature=args.temperature, n=args.n)
                for c in completions:
                    print(f"[{c.index}] {c.text}")
                last = completions[-1]
            else:
                last = None
                for chunk in client.generate_stream(args.prompt, max_tokens=args.max_tokens,
                                                    temperature=args.temperature):
                    print(chunk.text, end="", flush=True)
                    last = chunk
                print()
            print(f"[{last.usage.prompt_tokens} prompt + {last.usage.completion_tokens} "
                  f"completion tokens, {last.timings.e2e_seconds:.3f} s]", file=sys.stderr)
        except grpc.RpcError as e:
            print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""xgrammar (PyPI) on the same constraints, tokenizer and token sequences as moeserve-structured-bench:
the benchmark reference of docs/PERF.md, never part of the server.

  xgrammar_replay.py --tokenizer DIR --constraints constraints.jsonl --walks walks.jsonl

Per constraint: a cold compile (cache off, one thread, so that the figure compares with moeserve's
single-threaded CPU time), then every walk moeserve took, token by token: time
fill_next_token_bitmask, then accept_token. A walk stops early where xgrammar refuses a token
moeserve allowed (counted: the two grammars' languages differ there, e.g. xgrammar's JSON
whitespace or number rules). Timing is perf_counter_ns around one call from Python: it includes
about 0.3 us of call overhead, which favours moeserve slightly; noted in docs/PERF.md.
Prints one line per constraint and an ALL line like moeserve-structured-bench's.
"""

import argparse
import json
import statistics
import sys
import time


def percentile(values, q):
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--constraints", required=True)
    p.add_argument("--walks", required=True)
    p.add_argument("--vocab-size", type=int, default=0, help="logits width (default: the tokenizer's)")
    args = p.parse_args()

    import torch  # noqa: F401  (xgrammar imports it)
    import xgrammar as xgr
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=args.vocab_size or None)
    compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)
    constraints = [json.loads(line) for line in open(args.constraints)]
    walks = {}
    for line in open(args.walks):
        w = json.loads(line)
        walks.setdefault(w["name"], []).append(w["tokens"])

    print(f"xgrammar {xgr.__version__ if hasattr(xgr, '__version__') else ''}; vocab {info.vocab_size}")
    print(f"{'constraint':28s} {'compile_ms':>10s} {'cpu_ms':>8s} {'masks':>6s} {'mask_p50':>9s} {'mask_p99':>9s} "
          f"{'refused':>7s}")
    all_compile, all_cpu, all_masks = [], [], []
    refused_total = 0
    failed = 0
    for c in constraints:
        name, kind = c["name"], c["kind"]
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            if kind == "json_schema":
                value = c["value"] if isinstance(c["value"], str) else json.dumps(c["value"])
                compiled = compiler.compile_json_schema(value, any_whitespace=bool(c.get("any_whitespace")),
                                                        separators=(",", ":"), strict_mode=True)
            elif kind == "regex":
                compiled = compiler.compile_regex(c["value"])
            elif kind == "grammar":
                compiled = compiler.compile_grammar(c["value"])
            elif kind == "triggered":
                # xgrammar's structural tags with triggers: one tag per call, from the trigger to
                # the call's end (a DeepSeek-V3 block of one call; moeserve's allows several).
                spec = c["value"]
                body = spec["tool_calls"]
                tags = [xgr.StructuralTagItem(begin=spec["trigger"] + body.get("begin", "") + call["before"],
                                              schema=json.dumps(call["arguments"] or {"type": "object"}),
                                              end=call["after"] + body.get("end", ""))
                        for call in body["calls"]]
                compiled = compiler.compile_structural_tag(tags, [spec["trigger"]])
            else:
                compiled = compiler.compile_builtin_json_grammar()
        except Exception as e:  # noqa: BLE001
            print(f"{name:28s} compile failed: {str(e)[:80]}")
            failed += 1
            continue
        compile_ms = (time.perf_counter() - t0) * 1e3
        cpu_ms = (time.process_time() - c0) * 1e3
        all_compile.append(compile_ms)
        all_cpu.append(cpu_ms)
        bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
        masks = []
        refused = 0
        for tokens in walks.get(name, []):
            m = xgr.GrammarMatcher(compiled)
            for t in tokens:
                t1 = time.perf_counter_ns()
                m.fill_next_token_bitmask(bitmask)
                masks.append((time.perf_counter_ns() - t1) / 1e3)
                if not m.accept_token(t):
                    refused += 1
                    break
                if m.is_terminated():
                    break
        refused_total += refused
        all_masks.extend(masks)
        print(f"{name:28s} {compile_ms:10.1f} {cpu_ms:8.1f} {len(masks):6d} {percentile(masks, 0.5):9.1f} "
              f"{percentile(masks, 0.99):9.1f} {refused:7d}", flush=True)
    print(f"ALL: {len(all_compile)} constraints ({failed} failed to compile), compile median "
          f"{statistics.median(all_compile):.1f} ms (CPU {statistics.median(all_cpu):.1f} ms), p90 "
          f"{percentile(all_cpu, 0.9):.1f} ms CPU, max {max(all_cpu):.1f} ms CPU; {len(all_masks)} masks, median "
          f"{percentile(all_masks, 0.5):.1f} us, p99 {percentile(all_masks, 0.99):.1f} us; "
          f"{refused_total} walks cut where xgrammar refused moeserve's token")
    return 0


if __name__ == "__main__":
    sys.exit(main())

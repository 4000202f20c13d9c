#!/usr/bin/env python3
"""Prints the moeserve vs llama.cpp table of bench/cpu_vs_llama_cpp.sh from its results file
(lines "MODEL SIDE METRIC VALUE", one per measurement; "loadavg A,B,C" per repetition).

Each cell is the median over the repetitions with the range in brackets; the ratio is
moeserve / llama.cpp of the medians, written so that > 1 is better for moeserve on throughputs
(ratio of rates) and given as a plain quotient for times and memory (< 1 is better).
"""

import argparse
import collections
import statistics

ROWS = [
    # (model, metric, label, higher is better, unit format)
    ("qwen2-0.5b", "decode", "dense: batch-1 decode after 512 tokens, tokens/s", True, "{:.1f}"),
    ("qwen2-0.5b", "prefill", "dense: prefill of 512 tokens, tokens/s", True, "{:.1f}"),
    ("qwen2-0.5b", "serve_tok_s", "dense: serving 16 streams x (128 in, 128 out), output tokens/s", True, "{:.1f}"),
    ("qwen2-0.5b", "ttft_s", "dense: same, TTFT median, s", False, "{:.2f}"),
    ("qwen2-0.5b", "server_rss_gib", "dense: server peak RSS after serving, GiB", False, "{:.2f}"),
    ("qwen2-0.5b", "bench_rss_gib", "dense: bench peak RSS (prefill + decode), GiB", False, "{:.2f}"),
    ("qwen2-0.5b", "startup_s", "dense: start to healthy, s", False, "{:.2f}"),
    ("v2-lite-4l", "decode", "MoE: batch-1 decode after 512 tokens, tokens/s", True, "{:.1f}"),
    ("v2-lite-4l", "prefill", "MoE: prefill of 512 tokens, tokens/s", True, "{:.1f}"),
    ("v2-lite-4l", "bench_rss_gib", "MoE: bench peak RSS (prefill + decode), GiB", False, "{:.2f}"),
    ("v2-lite-4l", "server_rss_gib", "MoE: server peak RSS (idle after load), GiB", False, "{:.2f}"),
    ("v2-lite-4l", "startup_s", "MoE: start to healthy, s", False, "{:.2f}"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    values = collections.defaultdict(list)
    loads = []
    for line in open(args.results):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "loadavg":
            loads.append(parts[1])
            continue
        model, side, metric, value = parts
        try:
            values[(model, side, metric)].append(float(value))
        except ValueError:
            pass

    def cell(vals, fmt):
        if not vals:
            return "-", None
        med = statistics.median(vals)
        if len(vals) == 1:
            return fmt.format(med), med
        return f"{fmt.format(med)} ({fmt.format(min(vals))}–{fmt.format(max(vals))})", med

    print(f"{args.threads} threads each, {args.reps} interleaved repetitions; median (range)")
    print()
    print("| | moeserve | llama.cpp | moeserve / llama.cpp |")
    print("|---|---|---|---|")
    for model, metric, label, higher, fmt in ROWS:
        ms, ms_med = cell(values.get((model, "moeserve", metric), []), fmt)
        ll, ll_med = cell(values.get((model, "llama", metric), []), fmt)
        if ms_med is None and ll_med is None:
            continue
        ratio = "-"
        if ms_med is not None and ll_med:
            ratio = f"{ms_med / ll_med:.2f}×"
        print(f"| {label} | {ms} | {ll} | {ratio} |")
    print()
    print("load average (1, 5, 15 min) after each repetition: " + "; ".join(loads))


if __name__ == "__main__":
    main()

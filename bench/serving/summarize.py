#!/usr/bin/env python3
"""Summarizes moeserve-bench --json runs taken side by side (bench/grpc_vs_http.sh,
bench/openai_vs_llama_cpp.sh): per label the median over repetitions (range in brackets) of
output tokens/s, TTFT, TPOT and ITL percentiles, and the server's CPU milliseconds per output
token, then each label's ratio to the first one.

usage: summarize.py LABEL=FILE.json[@CPU_SECONDS] ... (a label given several times: repetitions)
"""

import json
import statistics
import sys
from collections import OrderedDict

FIELDS = [
    ("output tok/s", lambda s, cpu: s["output_throughput"], "{:.0f}"),
    ("TTFT p50 ms", lambda s, cpu: s["ttft_ms"]["median"], "{:.1f}"),
    ("TTFT p99 ms", lambda s, cpu: s["ttft_ms"]["p99"], "{:.1f}"),
    ("TPOT p50 ms", lambda s, cpu: s["tpot_ms"]["median"], "{:.2f}"),
    ("ITL p50 ms", lambda s, cpu: s["itl_ms"]["median"], "{:.2f}"),
    ("ITL p99 ms", lambda s, cpu: s["itl_ms"]["p99"], "{:.2f}"),
    # The server's CPU time covers the warm-up requests too: per token of all requests sent.
    ("server CPU ms / tok", lambda s, cpu: None if cpu is None else 1000 * cpu / max(1, s["all_output_tokens"]), "{:.3f}"),
]


def main():
    runs = OrderedDict()
    for arg in sys.argv[1:]:
        label, _, rest = arg.partition("=")
        path, _, cpu = rest.partition("@")
        with open(path) as f:
            doc = json.load(f)
        summary = doc["runs"][0]["summary"]
        config = doc["config"]
        # Fixed output lengths (ignore_eos): warm-up requests produced as many tokens each.
        per_request = summary["output_tokens"] / max(1, summary["completed"])
        summary["all_output_tokens"] = summary["output_tokens"] + per_request * config.get("warmup", 0)
        if summary["failed"]:
            print(f"warning: {label}: {summary['failed']} failed requests ({summary['errors']})", file=sys.stderr)
        runs.setdefault(label, []).append((summary, float(cpu) if cpu else None))
    labels = list(runs)
    medians = {}
    print("| figure | " + " | ".join(labels) + " | " + " | ".join(f"{l} / {labels[0]}" for l in labels[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(labels) - 1))
    for name, get, fmt in FIELDS:
        cells, meds = [], []
        for label in labels:
            values = [get(s, cpu) for s, cpu in runs[label]]
            values = [v for v in values if v is not None]
            if not values:
                cells.append("–")
                meds.append(None)
                continue
            med = statistics.median(values)
            meds.append(med)
            rng = f" [{fmt.format(min(values))}–{fmt.format(max(values))}]" if len(values) > 1 else ""
            cells.append(fmt.format(med) + rng)
        ratios = []
        for m in meds[1:]:
            ratios.append("–" if m is None or not meds[0] else f"{m / meds[0]:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        medians[name] = meds
    reps = {label: len(v) for label, v in runs.items()}
    print(f"\n(medians of {reps} runs each; range in brackets)")


if __name__ == "__main__":
    main()

"""Encode throughput of moeserve's tokenizer vs the Rust `tokenizers` library, side by side in one
run, single thread each, on the ShareGPT prompts of the shared data.

usage: bench_tokenizer.py BENCH_BINARY SHARED_DATA_DIR [REPEATS]
  BENCH_BINARY: build/bin/moeserve_tokenizer_bench

Texts: every turn ("value") of every conversation in prompts/sharegpt_v3_filtered_500.json.
Both encode without special tokens; token counts and the sum of ids must agree. `tokenizers` is
timed with encode_batch on a one-thread Rayon pool (RAYON_NUM_THREADS=1) and with a Python loop
over encode. Prints a Markdown table row per tokenizer.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers starts its pool
os.environ["TOKENIZERS_PARALLELISM"] = "true"  # keep encode_batch on the (1-thread) Rayon pool

import tokenizers  # noqa: E402


def time_best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def main():
    binary, shared = sys.argv[1], sys.argv[2]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    convs = json.load(open(os.path.join(shared, "prompts", "sharegpt_v3_filtered_500.json"), encoding="utf-8"))
    texts = [turn["value"] for c in convs for turn in c["conversations"]]
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
        texts_path = f.name
    print(f"{len(texts)} texts, {nbytes / 1e6:.2f} MB, tokenizers {tokenizers.__version__}, "
          f"{repeats} repeats (best of)")
    print("| tokenizer | tokens | tokenizers encode_batch (1 thread) | tokenizers encode loop | "
          "moeserve Encode | moeserve / encode_batch |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("deepseek_v3", "qwen3"):
        directory = os.path.join(shared, "tokenizers", name)
        tok = tokenizers.Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        batch_best, _, encs = time_best(lambda: tok.encode_batch(texts, add_special_tokens=False), repeats)
        loop_best, _, _ = time_best(lambda: [tok.encode(t, add_special_tokens=False) for t in texts], repeats)
        ref_tokens = sum(len(e.ids) for e in encs)
        ref_sum = sum(sum(e.ids) for e in encs)
        out = subprocess.run([binary, directory, texts_path, str(repeats)], check=True, capture_output=True,
                             text=True).stdout
        ours = json.loads(out)
        if ours["tokens"] != ref_tokens or ours["id_sum"] != ref_sum:
            sys.exit(f"{name}: ids differ: tokens {ours['tokens']} vs {ref_tokens}, sum {ours['id_sum']} vs {ref_sum}")
        mbps = lambda s: f"{nbytes / s / 1e6:.2f} MB/s ({ref_tokens / s / 1e3:.0f}k tok/s)"  # noqa: E731
        print(f"| {name} | {ref_tokens:,} | {mbps(batch_best)} | {mbps(loop_best)} | {mbps(ours['best_s'])} | "
              f"{batch_best / ours['best_s']:.2f}x |")
    os.unlink(texts_path)


if __name__ == "__main__":
    main()

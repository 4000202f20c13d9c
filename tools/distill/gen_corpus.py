#!/usr/bin/env python3
"""Teacher corpus for distillation: sample stories from the converted stories260K model.

The teacher is the Hugging Face Llama directory written by `moeserve convert --llama2c`. Sequences start
from BOS alone (what `moeserve generate --prompt ""` does), are sampled at temperature 1 (full
distribution, no top-k/top-p) and run a fixed length, so a sequence may hold the end of one story and
the start of the next, exactly as the teacher emits them. Batched sampling with a KV cache in torch is
much faster on one core than one process per story. Output: a uint16 token file (`--out`,
[n_seq, seq_len]) plus a small JSON sidecar.

Example:
  python3 tools/distill/gen_corpus.py --teacher /tmp/s260k --out tools/distill/work/train.u16 \
      --tokens 3000000 --seed 1
"""
import argparse
import json
import time

import numpy as np
import torch
from transformers import LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = LlamaForCausalLM.from_pretrained(args.teacher, dtype=torch.float32).eval()
    bos = model.config.bos_token_id
    gen = torch.Generator().manual_seed(args.seed)
    n_batches = -(-args.tokens // (args.batch * args.seq_len))
    out = np.zeros((n_batches * args.batch, args.seq_len), dtype=np.uint16)
    t0 = time.time()
    with torch.no_grad():
        for b in range(n_batches):
            ids = torch.full((args.batch, 1), bos, dtype=torch.long)
            seq = [ids]
            past = None
            cur = ids
            for _ in range(args.seq_len - 1):
                o = model(input_ids=cur, past_key_values=past, use_cache=True)
                past = o.past_key_values
                probs = torch.softmax(o.logits[:, -1, :].float(), dim=-1)
                cur = torch.multinomial(probs, 1, generator=gen)
                seq.append(cur)
            out[b * args.batch:(b + 1) * args.batch] = torch.cat(seq, dim=1).numpy().astype(np.uint16)
            done = (b + 1) * args.batch * args.seq_len
            print(f"batch {b + 1}/{n_batches}: {done} tokens, {done / (time.time() - t0):.0f} tok/s", flush=True)
    out.tofile(args.out)
    with open(args.out + ".json", "w") as f:
        json.dump({"teacher": args.teacher, "seed": args.seed, "seq_len": args.seq_len,
                   "n_seq": int(out.shape[0]), "tokens": int(out.size),
                   "seconds": round(time.time() - t0, 1)}, f, indent=1)


if __name__ == "__main__":
    main()

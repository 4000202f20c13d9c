#!/usr/bin/env python3
"""Ship a trained student as the repo's default model and write the fixture its test checks.

Writes into --dst (models/default): config.json + model.safetensors (save_pretrained, per-expert
names), tokenizer.json + tokenizer_config.json copied from the teacher directory, and
reference.safetensors, all computed by transformers in fp32:
  input_ids        i32 [P]      "Once upon a time" with BOS
  prefill_logits   f32 [P, V]   logits at every prompt position
  greedy_ids       i32 [N]      greedy continuation (full forward per step, no cache)
  route_ids        i32 [T]      a held-out teacher text for the routing check
  route_hidden_L   f32 [T, d]   the input of layer L's router (post-attention RMSNorm), each MoE layer L
  route_topk_L     i32 [T, k]   the experts transformers chose there
and prints per-expert routing counts over --val (all held-out teacher text).
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, DeepseekV3ForCausalLM

PROMPT = "Once upon a time"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--teacher", required=True, help="converted stories260K dir (tokenizer files)")
    ap.add_argument("--dst", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--greedy", type=int, default=48)
    args = ap.parse_args()
    torch.set_num_threads(1)

    model = DeepseekV3ForCausalLM.from_pretrained(args.ckpt, dtype=torch.float32).eval()
    model.generation_config.do_sample = False
    os.makedirs(args.dst, exist_ok=True)
    model.save_pretrained(args.dst)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.teacher, name), os.path.join(args.dst, name))
    tok = AutoTokenizer.from_pretrained(args.dst)
    model = DeepseekV3ForCausalLM.from_pretrained(args.dst, dtype=torch.float32).eval()  # what ships

    gates = {}
    for i, layer in enumerate(model.model.layers):
        if hasattr(layer.mlp, "gate"):
            gates[i] = layer.mlp.gate
    captured = {}

    def hook(i):
        def f(module, inputs, output):
            captured[i] = (inputs[0].reshape(-1, inputs[0].shape[-1]).clone(), output[2].clone())
        return f

    for i, g in gates.items():
        g.register_forward_hook(hook(i))

    ref = {}
    with torch.no_grad():
        ids = tok(PROMPT)["input_ids"]
        assert ids[0] == model.config.bos_token_id, ids
        ref["input_ids"] = torch.tensor(ids, dtype=torch.int32)
        ref["prefill_logits"] = model(input_ids=torch.tensor([ids])).logits[0].float().contiguous()
        seq = list(ids)
        for _ in range(args.greedy):
            seq.append(int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax()))
        greedy = seq[len(ids):]
        ref["greedy_ids"] = torch.tensor(greedy, dtype=torch.int32)

        val = np.fromfile(args.val, dtype=np.uint16).reshape(-1, args.seq_len).astype(np.int64)
        route_ids = torch.from_numpy(val[0])
        model(input_ids=route_ids[None])
        ref["route_ids"] = route_ids.to(torch.int32)
        for i, (h, topk) in captured.items():
            ref[f"route_hidden_{i}"] = h.float().contiguous()
            ref[f"route_topk_{i}"] = topk.to(torch.int32).contiguous()

        counts = {i: torch.zeros(g.num_experts, dtype=torch.long) for i, g in gates.items()}
        for b in range(0, val.shape[0], 32):
            model(input_ids=torch.from_numpy(val[b:b + 32]))
            for i, (_, topk) in captured.items():
                counts[i] += torch.bincount(topk.reshape(-1), minlength=gates[i].num_experts)
    save_file(ref, os.path.join(args.dst, "reference.safetensors"), metadata={"prompt": PROMPT})

    print("params:", sum(p.numel() for p in model.parameters()))
    print("greedy ids:", greedy)
    print("greedy text:", json.dumps(tok.decode(ids + greedy, skip_special_tokens=True)))
    for i, c in counts.items():
        share = (c.float() / c.sum()).tolist()
        print(f"layer {i} expert share over {val.size} held-out tokens:", " ".join(f"{s:.3f}" for s in share))


if __name__ == "__main__":
    main()

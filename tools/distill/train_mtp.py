#!/usr/bin/env python3
"""Train a multi-token-prediction (MTP) layer for the default model, as DeepSeek-V3 describes it.

The main model (models/default) stays frozen. The MTP module (tools/mtp_reference.py: enorm, hnorm,
eh_proj over concat(enorm(embed(t_{i+1})), hnorm(h_i)), one full DeepSeek-V3 decoder layer, the
shared head) learns to predict the token after next, t_{i+2}, from the main model's hidden state h_i
and the next token's embedding, on the teacher's text (gen_corpus.py samples): cross-entropy against
t_{i+2}, plus --soft-weight times the cross-entropy against the main model's own distribution at
position i + 1 (what a greedy verifier will compare the draft with). The embedding and the output
head are the main model's, frozen, as DeepSeek shares them. The decoder layer starts as a copy of
the main model's last layer and eh_proj as [small noise | identity], so the untrained module already
behaves like "one more layer on h_i"; the router's correction bias is balanced as in train.py.

Then writes --dst: the main model's tensors plus the MTP tensors at layer index num_hidden_layers
(DeepSeek's checkpoint names), config.json with num_nextn_predict_layers = 1, and prints the greedy
draft acceptance of chained k-token drafting on held-out text (what the engine reports).

Example (tools/distill/distill.sh runs it; this is how models/default's layer was trained, on the
corpus distill.sh samples, about 8 minutes on one core):
  python3 tools/distill/train_mtp.py --model models/default --train work/train.u16 \
      --val work/val.u16 --dst models/default --steps 1500 --batch 8 --lr 3e-3 --seed 1
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import DeepseekV3ForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mtp_reference import MtpLayer, chain  # noqa: E402


def init_from_main(mtp, model, gen):
    d = model.config.hidden_size
    with torch.no_grad():
        mtp.embed_tokens.weight.copy_(model.model.embed_tokens.weight)
        mtp.head.weight.copy_(model.lm_head.weight)
        mtp.block.load_state_dict(model.model.layers[-1].state_dict())
        mtp.head_norm.weight.copy_(model.model.norm.weight)
        mtp.enorm.weight.fill_(1.0)
        mtp.hnorm.weight.fill_(1.0)
        noise = torch.randn(d, d, generator=gen) * (0.1 / math.sqrt(d))
        mtp.eh_proj.weight.copy_(torch.cat([noise, torch.eye(d)], dim=1))
    for p in (mtp.embed_tokens.weight, mtp.head.weight):
        p.requires_grad_(False)


@torch.no_grad()
def greedy_acceptance(model, mtp, val, k, prompts, prompt_len=8, new_tokens=40):
    """Simulates greedy speculative decoding: per step, chained MTP drafts after the verified text,
    accepted while the main model's argmax agrees. Returns accepted / drafted and tokens per step."""
    drafted = accepted = steps = produced = 0
    for s in range(prompts):
        ids = torch.from_numpy(val[s, :prompt_len].astype(np.int64))
        target = prompt_len + new_tokens
        while ids.numel() < target:
            logits = model(input_ids=ids[None]).logits[0, -1]
            nxt = int(logits.argmax())
            seq = torch.cat([ids, torch.tensor([nxt])])
            drafts, _ = chain(model, mtp, seq, ids.numel(), k)
            # Verify: the main model's greedy continuation after seq.
            full = model(input_ids=torch.cat([seq, drafts.long()])[None]).logits[0]
            a = 0
            while a < k and int(full[seq.numel() - 1 + a].argmax()) == int(drafts[a]):
                a += 1
            drafted += k
            accepted += a
            steps += 1
            produced += 1 + a
            ids = torch.cat([seq, drafts[:a].long()])
    return accepted / drafted, produced / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="the trained main model (models/default)")
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--dst", required=True)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--soft-weight", type=float, default=1.0)
    ap.add_argument("--bias-gamma", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--k", type=int, default=3, help="draft length for the acceptance report")
    ap.add_argument("--eval-prompts", type=int, default=8, help="held-out prompts for the acceptance report")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    model = DeepseekV3ForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                  attn_implementation="eager").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    config = model.config
    config.num_nextn_predict_layers = 1
    gen = torch.Generator().manual_seed(args.seed)
    mtp = MtpLayer(config)
    init_from_main(mtp, model, gen)
    mtp.train()
    gate = mtp.block.mlp.gate
    load = torch.zeros(gate.num_experts)

    def count(module, inputs, output):
        load.add_(torch.bincount(output[2].reshape(-1), minlength=module.num_experts).float())

    gate.register_forward_hook(count)
    params = [p for p in mtp.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)

    train = np.fromfile(args.train, dtype=np.uint16).reshape(-1, args.seq_len)
    val = np.fromfile(args.val, dtype=np.uint16).reshape(-1, args.seq_len)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.55 + 0.45 * math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        x = torch.from_numpy(train[rng.integers(0, train.shape[0], args.batch)].astype(np.int64))
        with torch.no_grad():
            out = model.model(input_ids=x)
            h = out.last_hidden_state
            soft = F.softmax(model.lm_head(h[:, 1:-1]).float(), -1)  # main's prediction of t_{i+2}
        load.zero_()
        _, logits = mtp(x[:, 1:-1], h[:, :-2])  # rows i = 0..T-3 predict x[i + 2]
        logp = F.log_softmax(logits.float(), -1)
        hard = F.nll_loss(logp.reshape(-1, logp.shape[-1]), x[:, 2:].reshape(-1))
        soft_loss = -(soft * logp).sum(-1).mean()
        loss = hard + args.soft_weight * soft_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            gate.e_score_correction_bias += args.bias_gamma * torch.sign(load.mean() - load)
        if step % 20 == 0 or step == args.steps - 1:
            print(json.dumps({"step": step, "hard": round(hard.item(), 4), "soft": round(soft_loss.item(), 4),
                              "lr": round(lr, 6), "max_load_over_mean": round((load.max() / load.mean()).item(), 3),
                              "elapsed_s": round(time.time() - t0, 1)}), flush=True)

    mtp.eval()
    with torch.no_grad():
        xv = torch.from_numpy(val[:32].astype(np.int64))
        hv = model.model(input_ids=xv).last_hidden_state
        _, lv = mtp(xv[:, 1:-1], hv[:, :-2])
        val_ce = F.cross_entropy(lv.reshape(-1, lv.shape[-1]).float(), xv[:, 2:].reshape(-1)).item()
    acc, tokens_per_step = greedy_acceptance(model, mtp, val, args.k, args.eval_prompts)
    print(json.dumps({"val_next_next_ce": round(val_ce, 4), "greedy_acceptance_k": args.k,
                      "acceptance": round(acc, 4), "tokens_per_step": round(tokens_per_step, 3),
                      "train_s": round(time.time() - t0, 1)}), flush=True)

    tensors = {}
    with safe_open(os.path.join(args.model, "model.safetensors"), framework="pt") as f:
        for k in f.keys():
            if not k.startswith(f"model.layers.{config.num_hidden_layers}."):
                tensors[k] = f.get_tensor(k)
    tensors.update(mtp.hub_state_dict())
    os.makedirs(args.dst, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sorted(tensors.items())},
              os.path.join(args.dst, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    cfg["num_nextn_predict_layers"] = 1
    with open(os.path.join(args.dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {args.dst}: {len(tensors)} tensors", flush=True)


if __name__ == "__main__":
    main()

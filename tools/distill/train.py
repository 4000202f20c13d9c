#!/usr/bin/env python3
"""Distil the stories260K teacher into a small DeepSeek-V3-architecture MoE student on CPU.

Student: transformers' own DeepseekV3ForCausalLM (MLA attention, first layer dense, routed experts
with sigmoid scores, group-limited top-k, one shared expert). The routers' e_score_correction_bias
is not trained by gradients; after each step it is nudged toward balanced load the way DeepSeek-V3
does it without an auxiliary loss: bias_i += gamma * sign(mean_load - load_i).

Loss: cross-entropy against the teacher's full next-token distribution (soft targets, = KL to the
teacher up to its entropy), computed on the fly by the teacher (LlamaForCausalLM on the converted
stories260K directory) over teacher-sampled sequences from gen_corpus.py, plus --hard-weight times the
ordinary cross-entropy on the sampled tokens. Deterministic given --seed and --threads.

Example:
  python3 tools/distill/train.py --teacher /tmp/s260k --train tools/distill/work/train.u16 \
      --val tools/distill/work/val.u16 --out tools/distill/work/run1 --steps 1500 --seed 1
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM, LlamaForCausalLM


def student_config(args):
    return DeepseekV3Config(
        vocab_size=512, hidden_size=args.hidden, intermediate_size=args.dense_inter,
        moe_intermediate_size=args.moe_inter, num_hidden_layers=args.layers, first_k_dense_replace=1,
        num_attention_heads=args.heads, num_key_value_heads=args.heads,
        n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1, n_group=2, topk_group=1,
        routed_scaling_factor=1.0, norm_topk_prob=True, q_lora_rank=None, kv_lora_rank=32,
        qk_rope_head_dim=16, qk_nope_head_dim=16, v_head_dim=16, max_position_embeddings=512,
        num_nextn_predict_layers=0, bos_token_id=1, eos_token_id=2, pad_token_id=None,
        tie_word_embeddings=False, rms_norm_eps=1e-5, rope_theta=10000.0)


class LoadCounter:
    """Counts, per MoE layer, how many tokens each routed expert received (forward hooks on the routers)."""

    def __init__(self, model):
        self.gates = []
        for layer in model.model.layers:
            gate = getattr(layer.mlp, "gate", None)
            if gate is not None and hasattr(gate, "e_score_correction_bias"):
                self.gates.append(gate)
                gate.register_forward_hook(self._hook)
        self.counts = {id(g): torch.zeros(g.num_experts) for g in self.gates}

    def _hook(self, module, inputs, output):
        idx = output[2]
        self.counts[id(module)] += torch.bincount(idx.reshape(-1), minlength=module.num_experts).float()

    def reset(self):
        for c in self.counts.values():
            c.zero_()

    def table(self):
        return [self.counts[id(g)].clone() for g in self.gates]

    def update_bias(self, gamma):
        with torch.no_grad():
            for g in self.gates:
                load = self.counts[id(g)]
                g.e_score_correction_bias += gamma * torch.sign(load.mean() - load)


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


@torch.no_grad()
def evaluate(student, teacher, val, batch=32):
    """Mean next-token CE on held-out teacher samples, for student and teacher; and KL(teacher||student)."""
    student.eval()
    tot_s = tot_t = tot_kl = n = 0.0
    for i in range(0, val.shape[0], batch):
        x = torch.from_numpy(val[i:i + batch].astype(np.int64))
        ls = student(input_ids=x).logits[:, :-1].float()
        lt = teacher(input_ids=x).logits[:, :-1].float()
        y = x[:, 1:]
        tot_s += F.cross_entropy(ls.reshape(-1, ls.shape[-1]), y.reshape(-1), reduction="sum").item()
        tot_t += F.cross_entropy(lt.reshape(-1, lt.shape[-1]), y.reshape(-1), reduction="sum").item()
        lpt = F.log_softmax(lt, -1)
        tot_kl += (lpt.exp() * (lpt - F.log_softmax(ls, -1))).sum().item()
        n += y.numel()
    student.train()
    return tot_s / n, tot_t / n, tot_kl / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--hard-weight", type=float, default=0.0)
    ap.add_argument("--bias-gamma", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--dense-inter", type=int, default=192)
    ap.add_argument("--moe-inter", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--val-seqs", type=int, default=64, help="held-out sequences used for periodic evals")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    train = np.fromfile(args.train, dtype=np.uint16).reshape(-1, args.seq_len)
    val = np.fromfile(args.val, dtype=np.uint16).reshape(-1, args.seq_len)
    teacher = LlamaForCausalLM.from_pretrained(args.teacher, dtype=torch.float32).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    cfg = student_config(args)
    cfg._attn_implementation = "sdpa"
    student = DeepseekV3ForCausalLM(cfg).train()
    n_params = sum(p.numel() for p in student.parameters())
    print(f"student params: {n_params}", flush=True)
    counter = LoadCounter(student)

    decay = [p for n, p in student.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in student.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))

    rng = np.random.default_rng(args.seed)
    order = rng.permutation(train.shape[0])
    pos = 0
    log = open(os.path.join(args.out, "log.jsonl"), "a")
    t0 = time.time()
    for step in range(args.steps):
        if pos + args.batch > len(order):
            order = rng.permutation(train.shape[0])
            pos = 0
        x = torch.from_numpy(train[order[pos:pos + args.batch]].astype(np.int64))
        pos += args.batch
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        with torch.no_grad():
            pt = F.softmax(teacher(input_ids=x).logits[:, :-1].float(), -1)
        counter.reset()
        ls = F.log_softmax(student(input_ids=x).logits[:, :-1].float(), -1)
        soft = -(pt * ls).sum(-1).mean()
        hard = F.nll_loss(ls.reshape(-1, ls.shape[-1]), x[:, 1:].reshape(-1))
        loss = soft + args.hard_weight * hard
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        counter.update_bias(args.bias_gamma)

        if step % 10 == 0 or step == args.steps - 1:
            loads = counter.table()
            imb = max((l.max() / l.mean()).item() for l in loads)
            rec = {"step": step, "soft": round(soft.item(), 4), "hard": round(hard.item(), 4),
                   "lr": round(lr_at(step, args), 6), "max_load_over_mean": round(imb, 3),
                   "elapsed_s": round(time.time() - t0, 1)}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        last = step == args.steps - 1
        if (step + 1) % args.eval_every == 0 or last:
            vs, vt, kl = evaluate(student, teacher, val[:args.val_seqs] if not last else val)
            rec = {"step": step, "val_student": round(vs, 4), "val_teacher": round(vt, 4), "val_kl": round(kl, 4),
                   "val_seqs": int(val.shape[0] if last else min(args.val_seqs, val.shape[0]))}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if (step + 1) % args.ckpt_every == 0 or last:
            student.save_pretrained(os.path.join(args.out, "ckpt"))
            with open(os.path.join(args.out, "ckpt", "train_state.json"), "w") as f:
                json.dump({"step": step + 1, "elapsed_s": round(time.time() - t0, 1), "params": n_params,
                           "args": vars(args)}, f, indent=1)
    print(f"done in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()

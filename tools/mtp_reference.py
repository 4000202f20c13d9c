#!/usr/bin/env python3
"""DeepSeek-V3 multi-token prediction (MTP): an independent torch reference, and its test fixture.

transformers does not implement MTP (it skips the checkpoint's layers >= num_hidden_layers), so this
module writes it from DeepSeek-V3's technical report (section 2.2) and checkpoint layout. The MTP
module k (V3 ships one, at layer index num_hidden_layers, `num_nextn_predict_layers` = 1) predicts
the token after next: for position i, with h_i the main model's output at i (after its final
RMSNorm, as vLLM and SGLang feed it) and t_{i+1} the next token,

    x_i  = eh_proj( concat( enorm(embed(t_{i+1})), hnorm(h_i) ) )       [2d] -> [d], no bias
    y_i  = decoder_layer(x_i)  (a full DeepSeek-V3 layer: MLA + MoE, causal over the MTP's own
                                inputs x_0..x_i at positions 0..i, RoPE as the main model)
    p_i  = softmax( shared_head.head( shared_head.norm(y_i) ) )           predicts t_{i+2}

Checkpoint names, L = num_hidden_layers: model.layers.L.{enorm,hnorm}.weight,
model.layers.L.eh_proj.weight [d, 2d], model.layers.L.embed_tokens.weight (= the main embedding),
model.layers.L.shared_head.norm.weight, model.layers.L.shared_head.head.weight (= lm_head), and the
decoder layer's own tensors under model.layers.L. (input_layernorm, self_attn.*, mlp.*).

As a drafter, MTP chains itself: draft 1 comes from row i = the last verified position; draft j + 1
feeds y of the previous draft's row as the "h" of the next position with draft j's embedding.

Usage:
  python3 tools/mtp_reference.py make-fixture [--src tests/fixtures/models/deepseek_v3]
      [--out tests/fixtures/models/deepseek_v3_mtp] [--seed 0]
writes the source fixture's config and weights plus random MTP weights into --out, and
reference_mtp.safetensors (float32/int32):
  token_ids     i32 [T]     the source fixture's prompt followed by its greedy decode ids
  main_hidden   f32 [T, d]  the main model's final-norm output at every position
  mtp_logits    f32 [T-1,V] teacher-forced MTP logits: row i predicts token i + 2
  chain_prompt  i32 []      P: the chain starts after the prompt token_ids[:P] and token_ids[P]
  chain_ids     i32 [K]     greedy chained drafts (K = 3): chain_ids[0] = argmax(mtp_logits[P-1])
  chain_logits  f32 [K, V]  the logits each chained draft was taken from
Deterministic given --seed. CPU, fp32, eager attention.
"""
import argparse
import json
import math
import os
import shutil
import sys

import torch
from torch import nn
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_test_models as mtm  # noqa: E402  (randomize, hub layout helpers)
from transformers.models.deepseek_v3.modeling_deepseek_v3 import (  # noqa: E402
    DeepseekV3DecoderLayer, DeepseekV3RMSNorm, DeepseekV3RotaryEmbedding)

CHAIN = 3


class MtpLayer(nn.Module):
    """One DeepSeek-V3 MTP module (see the module docstring)."""

    def __init__(self, config):
        super().__init__()
        d, v = config.hidden_size, config.vocab_size
        self.layer_idx = config.num_hidden_layers
        self.embed_tokens = nn.Embedding(v, d)
        self.enorm = DeepseekV3RMSNorm(d, eps=config.rms_norm_eps)
        self.hnorm = DeepseekV3RMSNorm(d, eps=config.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * d, d, bias=False)
        self.block = DeepseekV3DecoderLayer(config, self.layer_idx)
        self.head_norm = DeepseekV3RMSNorm(d, eps=config.rms_norm_eps)
        self.head = nn.Linear(d, v, bias=False)
        self.rotary = DeepseekV3RotaryEmbedding(config=config)

    def forward(self, next_ids, prev_hidden):
        """next_ids [B, T] (t_{i+1}), prev_hidden [B, T, d] (h_i), rows at positions 0..T-1.
        Returns (y [B, T, d], logits [B, T, V])."""
        x = self.eh_proj(torch.cat([self.enorm(self.embed_tokens(next_ids)),
                                    self.hnorm(prev_hidden)], dim=-1))
        t = x.shape[1]
        positions = torch.arange(t)[None]
        mask = torch.full((t, t), float("-inf")).triu(1)[None, None]
        y = self.block(x, attention_mask=mask, position_ids=positions,
                       position_embeddings=self.rotary(x, positions))
        return y, self.head(self.head_norm(y))

    # Checkpoint (hub) names <-> this module.
    def hub_state_dict(self):
        pre = f"model.layers.{self.layer_idx}."
        sd = {pre + "embed_tokens.weight": self.embed_tokens.weight,
              pre + "enorm.weight": self.enorm.weight,
              pre + "hnorm.weight": self.hnorm.weight,
              pre + "eh_proj.weight": self.eh_proj.weight,
              pre + "shared_head.norm.weight": self.head_norm.weight,
              pre + "shared_head.head.weight": self.head.weight}
        block = {pre + k: v for k, v in self.block.state_dict().items()}
        sd.update(mtm.to_hub_layout(block, "deepseek_v3"))
        return {k: v.detach().clone().contiguous().float() for k, v in sd.items()}

    def load_hub(self, tensors):
        pre = f"model.layers.{self.layer_idx}."
        with torch.no_grad():
            self.embed_tokens.weight.copy_(tensors[pre + "embed_tokens.weight"])
            self.enorm.weight.copy_(tensors[pre + "enorm.weight"])
            self.hnorm.weight.copy_(tensors[pre + "hnorm.weight"])
            self.eh_proj.weight.copy_(tensors[pre + "eh_proj.weight"])
            self.head_norm.weight.copy_(tensors[pre + "shared_head.norm.weight"])
            self.head.weight.copy_(tensors[pre + "shared_head.head.weight"])
        skip = ("embed_tokens.", "enorm.", "hnorm.", "eh_proj.", "shared_head.")
        block = {}
        for k, v in tensors.items():
            if k.startswith(pre) and not k[len(pre):].startswith(skip):
                block["model.layers.0." + k[len(pre):]] = v
        holder = nn.Module()
        holder.model = nn.Module()
        holder.model.layers = nn.ModuleList([self.block])
        _load_hub_block(holder, block)


def _load_hub_block(holder, hub_sd):
    sd = {}
    fused = {}
    for k, v in hub_sd.items():
        parts = k.split(".")
        if ".mlp.experts." in k and parts[-3].isdigit():
            pre = k.split("mlp.experts.")[0] + "mlp.experts."
            fused.setdefault(pre, {}).setdefault(parts[-2], {})[int(parts[-3])] = v
        else:
            sd[k] = v
    for pre, projs in fused.items():
        n = len(projs["gate_proj"])
        sd[pre + "gate_up_proj"] = torch.stack(
            [torch.cat([projs["gate_proj"][e], projs["up_proj"][e]], 0) for e in range(n)])
        sd[pre + "down_proj"] = torch.stack([projs["down_proj"][e] for e in range(n)])
    missing, unexpected = holder.load_state_dict(sd, strict=False)
    assert not unexpected and not missing, (missing, unexpected)


@torch.no_grad()
def main_hidden(model, ids):
    """The main model's final-norm output at every position of ids [T]."""
    return model.model(input_ids=ids[None].long(), use_cache=False).last_hidden_state[0]


@torch.no_grad()
def teacher_forced(model, mtp, ids):
    """MTP (y, logits) for rows 0..T-2 of ids [T]: row i sees h_i and ids[i + 1]."""
    h = main_hidden(model, ids)
    y, logits = mtp(ids[None, 1:].long(), h[None, :-1])
    return h, y[0], logits[0]


@torch.no_grad()
def chain(model, mtp, ids, prompt_len, k):
    """Greedy chained drafts after ids[:prompt_len] and the next token ids[prompt_len]: draft 1
    from MTP row prompt_len - 1, each further draft from the previous row's y and draft."""
    h = main_hidden(model, ids[:prompt_len])
    next_ids = ids[1:prompt_len + 1].long().tolist()
    prev = [h[i] for i in range(prompt_len)]
    drafts, rows = [], []
    for _ in range(k):
        y, logits = mtp(torch.tensor([next_ids]), torch.stack(prev)[None])
        row = logits[0, -1]
        drafts.append(int(row.argmax()))
        rows.append(row.float().clone())
        next_ids.append(drafts[-1])
        prev.append(y[0, -1])
    return torch.tensor(drafts, dtype=torch.int32), torch.stack(rows)


def read_tensors(model_dir):
    out = {}
    for name in sorted(os.listdir(model_dir)):
        if name.endswith(".safetensors") and not name.startswith("reference"):
            with safe_open(os.path.join(model_dir, name), framework="pt") as f:
                for k in f.keys():
                    out[k] = f.get_tensor(k).float()
    return out


def make_fixture(args):
    from transformers import DeepseekV3ForCausalLM
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    for name in ("config.json", "generation_config.json"):
        shutil.copy(os.path.join(args.src, name), os.path.join(args.out, name))
    model = DeepseekV3ForCausalLM.from_pretrained(args.src, dtype=torch.float32,
                                                  attn_implementation="eager").eval()
    config = model.config
    assert config.num_nextn_predict_layers == 1, "the source fixture's config must declare one MTP layer"
    gen = torch.Generator().manual_seed(args.seed)
    mtp = MtpLayer(config).eval()
    mtm.randomize(mtp, gen)  # same scheme as the fixtures: norms ~N(1, .1), linears ~N(0, 1/fan_in)
    with torch.no_grad():  # DeepSeek-V3 ships copies of the main embedding and LM head
        mtp.embed_tokens.weight.copy_(model.model.embed_tokens.weight)
        mtp.head.weight.copy_(model.lm_head.weight)
    tensors = read_tensors(args.src)
    tensors.update(mtp.hub_state_dict())
    save_file({k: v.contiguous() for k, v in sorted(tensors.items())},
              os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})

    # Reload what was written, through the loader, and compute the reference from that.
    reloaded = MtpLayer(config).eval()
    reloaded.load_hub(read_tensors(args.out))
    with safe_open(os.path.join(args.src, "reference.safetensors"), framework="pt") as f:
        prompt = f.get_tensor("input_ids")
        decode = f.get_tensor("decode_ids")
    ids = torch.cat([prompt, decode]).to(torch.int64)
    h, _, logits = teacher_forced(model, reloaded, ids)
    _, _, logits_orig = teacher_forced(model, mtp, ids)
    assert (logits - logits_orig).abs().max().item() == 0.0, "reloaded MTP differs"
    prompt_len = int(prompt.numel())
    chain_ids, chain_logits = chain(model, reloaded, ids, prompt_len, CHAIN)
    assert int(chain_ids[0]) == int(logits[prompt_len - 1].argmax())
    # Margins, so that an fp32 reimplementation cannot flip a greedy draft by rounding.
    top2 = chain_logits.topk(2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    ref = {"token_ids": ids.to(torch.int32).contiguous(),
           "main_hidden": h.float().contiguous(),
           "mtp_logits": logits.float().contiguous(),
           "chain_prompt": torch.tensor(prompt_len, dtype=torch.int32),
           "chain_ids": chain_ids.contiguous(),
           "chain_logits": chain_logits.contiguous()}
    save_file(ref, os.path.join(args.out, "reference_mtp.safetensors"),
              metadata={"format": "moeserve-mtp-reference-v1", "seed": str(args.seed),
                        "torch": torch.__version__})
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump({"source": os.path.basename(os.path.normpath(args.src)), "seed": args.seed,
                   "token_ids": ids.tolist(), "chain_ids": chain_ids.tolist(),
                   "chain_min_top2_margin": round(margin, 5),
                   "mtp_greedy": logits.argmax(-1).tolist()}, f, indent=1)
    print(f"wrote {args.out}: {len(tensors)} tensors, chain {chain_ids.tolist()}, "
          f"min top-2 margin {margin:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-fixture")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mk.add_argument("--src", default=os.path.join(root, "tests/fixtures/models/deepseek_v3"))
    mk.add_argument("--out", default=os.path.join(root, "tests/fixtures/models/deepseek_v3_mtp"))
    mk.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.cmd == "make-fixture":
        make_fixture(args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Tiny random HF models per architecture + transformers reference logits (test fixtures).

Usage:  python3 tools/make_test_models.py [--seed 0] [--out tests/fixtures/models] [--only NAME ...]

For every case a directory <out>/<name>/ is written with
  config.json, model.safetensors (or shards + model.safetensors.index.json),
  reference.safetensors, reference.json.
See tools/README.md ("make_test_models.py") for the exact contents and the semantics pitfalls.

Deterministic given --seed: every case re-seeds torch with (seed, case index) before building.
CPU only, fp32, eager attention, torch.use_deterministic_algorithms(True).
"""
import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file, load_file

PROMPT_LEN = 9
PROMPT2_LEN = 5
N_DECODE = 5
VOCAB = 256

# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------

def common(**kw):
    d = dict(vocab_size=VOCAB, max_position_embeddings=64, rms_norm_eps=1e-6, bos_token_id=1,
             eos_token_id=2, pad_token_id=None, attn_implementation="eager")
    d.update(kw)
    return d


def llama_cfg(**kw):
    d = common(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, head_dim=16, tie_word_embeddings=False,
               rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    d.update(kw)
    return transformers.LlamaConfig(**d)


def qwen2_cfg():
    return transformers.Qwen2Config(**common(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=False, use_sliding_window=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}))


def mixtral_cfg():
    return transformers.MixtralConfig(**common(
        hidden_size=64, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
        tie_word_embeddings=False, sliding_window=None, router_jitter_noise=0.0,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}))


def qwen3_cfg(**kw):
    # head_dim 24 != hidden/heads = 16: Qwen3's head size is its own field.
    d = common(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, head_dim=24, tie_word_embeddings=False, use_sliding_window=False,
               attention_bias=False, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    d.update(kw)
    return transformers.Qwen3Config(**d)


def qwen3_moe_cfg(**kw):
    d = common(hidden_size=64, intermediate_size=64, moe_intermediate_size=24, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, head_dim=24, num_experts=8,
               num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[0],
               tie_word_embeddings=False, use_sliding_window=False, router_aux_loss_coef=0.0,
               rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    d.update(kw)
    return transformers.Qwen3MoeConfig(**d)


def deepseek_v2_cfg(full_v2):
    # YaRN: original_max_position_embeddings 64 (not 16) so that with qk_rope_head_dim 8 the correction
    # range is [0, 2]: pair 0 extrapolated, pair 1 blended 50/50, pairs 2-3 interpolated (with 16 the
    # blend region is empty).
    kw = common(hidden_size=64, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=4, kv_lora_rank=32, max_position_embeddings=256, qk_nope_head_dim=16, qk_rope_head_dim=8,
                v_head_dim=16, n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=2,
                moe_intermediate_size=32, first_k_dense_replace=1, tie_word_embeddings=False,
                norm_topk_prob=False)
    if full_v2:
        # num_experts_per_tok 3 > topk_group 2: with max-per-group scores and k <= topk_group the group
        # restriction can never change the selection (the top-k experts' groups are always chosen).
        kw.update(q_lora_rank=24, topk_method="group_limited_greedy", n_group=4, topk_group=2,
                  num_experts_per_tok=3,
                  routed_scaling_factor=16.0,
                  rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                   "original_max_position_embeddings": 64, "beta_fast": 32,
                                   "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707})
    else:
        kw.update(q_lora_rank=None, topk_method="greedy", n_group=1, topk_group=1,
                  routed_scaling_factor=1.0,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    # DeepSeek-V2 hub configs also carry scoring_func="softmax"; transformers ignores it.
    kw["scoring_func"] = "softmax"
    return transformers.DeepseekV2Config(**kw)


def deepseek_v3_cfg(fp8=False):
    kw = common(hidden_size=64, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=4, q_lora_rank=24, max_position_embeddings=256, kv_lora_rank=32, qk_nope_head_dim=16,
                qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=8, num_experts_per_tok=3,
                n_shared_experts=1, moe_intermediate_size=32, n_group=4, topk_group=2,
                norm_topk_prob=True, routed_scaling_factor=2.5, first_k_dense_replace=1,
                tie_word_embeddings=False, rope_interleave=True,
                rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                 "original_max_position_embeddings": 64, "beta_fast": 32,
                                 "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.8})
    # hub configs carry these; transformers' DeepseekV3 router hard-codes sigmoid + noaux_tc.
    kw.update(topk_method="noaux_tc", scoring_func="sigmoid")
    if fp8:
        kw.update(hidden_size=160, intermediate_size=288, moe_intermediate_size=136,
                  num_hidden_layers=2, n_routed_experts=4, num_experts_per_tok=2, n_group=2,
                  topk_group=1)
    return transformers.DeepseekV3Config(**kw)


CASES = [
    # name, model class, config builder, storage
    ("llama", "LlamaForCausalLM", lambda: llama_cfg(), "fp32"),
    ("llama3_tied", "LlamaForCausalLM", lambda: llama_cfg(
        tie_word_embeddings=True, max_position_embeddings=128,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64}), "fp32"),
    ("llama_linear", "LlamaForCausalLM", lambda: llama_cfg(
        rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}), "fp32"),
    ("qwen2", "Qwen2ForCausalLM", qwen2_cfg, "fp32"),
    ("mixtral", "MixtralForCausalLM", mixtral_cfg, "fp32"),
    ("deepseek_v2_lite", "DeepseekV2ForCausalLM", lambda: deepseek_v2_cfg(False), "fp32"),
    ("deepseek_v2", "DeepseekV2ForCausalLM", lambda: deepseek_v2_cfg(True), "fp32"),
    ("deepseek_v3", "DeepseekV3ForCausalLM", lambda: deepseek_v3_cfg(False), "fp32"),
    ("deepseek_v3_fp8", "DeepseekV3ForCausalLM", lambda: deepseek_v3_cfg(True), "fp8"),
    ("qwen2_bf16_sharded", "Qwen2ForCausalLM", qwen2_cfg, "bf16_sharded"),
    ("qwen3", "Qwen3ForCausalLM", qwen3_cfg, "fp32"),
    ("qwen3_moe", "Qwen3MoeForCausalLM", qwen3_moe_cfg, "fp32"),
]

# Acceptance cases: configurations unlike the parity fixtures above; only transformers' greedy
# continuations are stored (greedy.json), for the engine to reproduce alone and batched.
# Stored in BF16 (the reference runs in fp32 on the stored values) to keep them small.
GREEDY_CASES = [
    # tied embeddings, 3 query heads per kv head, head_dim 24 (hidden 40 / 5 heads = 8), q/k/v/o
    # biases, 3 layers, rope theta 1e4
    ("qwen3_greedy", "Qwen3ForCausalLM", lambda: qwen3_cfg(
        hidden_size=40, intermediate_size=72, num_hidden_layers=3, num_attention_heads=6,
        num_key_value_heads=2, head_dim=24, tie_word_embeddings=True, attention_bias=True,
        max_position_embeddings=96, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    # MoE only on odd layers (decoder_sparse_step 2) and not on layer 3 (mlp_only_layers), 6
    # experts top-3 without renormalisation, head_dim 8
    ("qwen3_moe_greedy", "Qwen3MoeForCausalLM", lambda: qwen3_moe_cfg(
        hidden_size=48, intermediate_size=64, moe_intermediate_size=24, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, head_dim=8, num_experts=6,
        num_experts_per_tok=3, norm_topk_prob=False, decoder_sparse_step=2, mlp_only_layers=[3],
        max_position_embeddings=96)),
]
GREEDY_PROMPT_LENS = (7, 12, 3)
GREEDY_NEW_TOKENS = 16

# --------------------------------------------------------------------------------------------
# Random init
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def randomize(model, gen):
    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=gen) * std + mean

    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if name.endswith("embed_tokens.weight"):
            # small: otherwise (esp. with tied embeddings) the residual embedding dominates and the
            # model just predicts its input token again
            p.copy_(normal(p.shape, 0.1))
        elif "norm" in name and p.dim() == 1:
            p.copy_(normal(p.shape, 0.1, 1.0))          # RMSNorm weights around 1
        elif name.endswith("bias"):
            p.copy_(normal(p.shape, 0.1))
        elif name.endswith("gate.weight") and p.dim() == 2 and "proj" not in name:
            p.copy_(normal(p.shape, 1.0 / math.sqrt(p.shape[1]) * 1.5))  # router: spread-out logits
        else:
            fan_in = p.shape[-1]
            p.copy_(normal(p.shape, 1.0 / math.sqrt(fan_in)))
    for name, b in sorted(model.named_buffers(), key=lambda kv: kv[0]):
        if name.endswith("e_score_correction_bias"):
            b.copy_(normal(b.shape, 0.1))


# --------------------------------------------------------------------------------------------
# Reference computation
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def reference(model, ids, ids2):
    out = model(input_ids=ids[None].long(), use_cache=True)
    prefill = out.logits[0].float().clone()
    past = out.past_key_values
    nxt = int(prefill[-1].argmax())
    dec_ids, dec_logits = [], []
    for _ in range(N_DECODE):
        dec_ids.append(nxt)
        o = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = o.past_key_values
        row = o.logits[0, -1].float().clone()
        dec_logits.append(row)
        nxt = int(row.argmax())
    dec_ids_t = torch.tensor(dec_ids, dtype=torch.int32)
    dec_logits_t = torch.stack(dec_logits)
    # self-check: a full (cache-less) forward over prompt + decode ids gives the same rows
    full = model(input_ids=torch.cat([ids, dec_ids_t])[None].long(), use_cache=False).logits[0]
    err_full = (full[PROMPT_LEN - 1:PROMPT_LEN - 1 + N_DECODE + 1][1:] - dec_logits_t).abs().max().item()
    assert err_full < 1e-4, f"cached decode differs from full forward: {err_full}"
    prefill2 = model(input_ids=ids2[None].long(), use_cache=False).logits[0].float().clone()
    return {
        "input_ids": ids.to(torch.int32).contiguous(),
        "prefill_logits": prefill.contiguous(),
        "decode_ids": dec_ids_t.contiguous(),
        "decode_logits": dec_logits_t.contiguous(),
        "input_ids_2": ids2.to(torch.int32).contiguous(),
        "prefill_logits_2": prefill2.contiguous(),
    }


REF_METADATA = {
    "format": "moeserve-reference-v1",
    "input_ids": "int32 [P] prompt 1",
    "prefill_logits": "float32 [P,V] logits of one forward over input_ids from an empty cache, row p = position p",
    "decode_ids": "int32 [N] greedy tokens: decode_ids[0] = argmax(prefill_logits[P-1]); "
                  "decode_ids[i+1] = argmax(decode_logits[i])",
    "decode_logits": "float32 [N,V] row i = logits produced when decode_ids[i] is fed alone at position P+i "
                     "with the KV cache of everything before it (last prefill row is NOT repeated)",
    "input_ids_2": "int32 [P2] prompt 2 (independent sequence, for batching)",
    "prefill_logits_2": "float32 [P2,V] logits of one forward over input_ids_2",
}


# --------------------------------------------------------------------------------------------
# Hub-style (per-expert) state dict
# --------------------------------------------------------------------------------------------

def to_hub_layout(sd, model_type):
    """transformers 5 keeps routed experts fused (experts.gate_up_proj [E,2I,H], experts.down_proj
    [E,H,I]); real hub checkpoints store one Linear per expert. Convert to the hub names."""
    out = {}
    for k, v in sd.items():
        if k.endswith("mlp.experts.gate_up_proj"):
            pre = k[: -len("mlp.experts.gate_up_proj")]
            inter = v.shape[1] // 2
            for e in range(v.shape[0]):
                g, u = v[e, :inter], v[e, inter:]
                if model_type == "mixtral":
                    out[f"{pre}block_sparse_moe.experts.{e}.w1.weight"] = g.clone()
                    out[f"{pre}block_sparse_moe.experts.{e}.w3.weight"] = u.clone()
                else:
                    out[f"{pre}mlp.experts.{e}.gate_proj.weight"] = g.clone()
                    out[f"{pre}mlp.experts.{e}.up_proj.weight"] = u.clone()
        elif k.endswith("mlp.experts.down_proj"):
            pre = k[: -len("mlp.experts.down_proj")]
            for e in range(v.shape[0]):
                if model_type == "mixtral":
                    out[f"{pre}block_sparse_moe.experts.{e}.w2.weight"] = v[e].clone()
                else:
                    out[f"{pre}mlp.experts.{e}.down_proj.weight"] = v[e].clone()
        elif model_type == "mixtral" and ".mlp.gate.weight" in k:
            out[k.replace(".mlp.gate.weight", ".block_sparse_moe.gate.weight")] = v.clone()
        else:
            out[k] = v.clone().contiguous()
    return out


# --------------------------------------------------------------------------------------------
# FP8 block quantisation (DeepSeek-V3 checkpoint format)
# --------------------------------------------------------------------------------------------
FP8_MAX = 448.0
BLOCK = 128


def is_fp8_target(name):
    if not name.startswith("model.layers.") or not name.endswith(".weight"):
        return False
    if "norm" in name or name.endswith("mlp.gate.weight"):
        return False
    return True  # self_attn.*_proj, mlp.{gate,up,down}_proj, experts.*, shared_experts.*


def quantize_block_fp8(w):
    out_f, in_f = w.shape
    so, si = math.ceil(out_f / BLOCK), math.ceil(in_f / BLOCK)
    scale = torch.empty(so, si, dtype=torch.float32)
    q = torch.empty(out_f, in_f, dtype=torch.float8_e4m3fn)
    for i in range(so):
        for j in range(si):
            blk = w[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK].float()
            amax = blk.abs().max().clamp(min=1e-12)
            s = (amax / FP8_MAX).float()
            scale[i, j] = s
            q[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK] = (blk / s).clamp(-FP8_MAX, FP8_MAX).to(
                torch.float8_e4m3fn)
    return q, scale


def dequantize_block_fp8(q, scale_inv):
    out_f, in_f = q.shape
    s = scale_inv.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)[:out_f, :in_f]
    return q.float() * s


def load_dir_state_dict(d):
    """Reads all safetensors of a saved fixture dir (hub names), dequantising fp8 -> fp32."""
    files = sorted(f for f in os.listdir(d) if f.startswith("model") and f.endswith(".safetensors"))
    sd = {}
    for f in files:
        sd.update(load_file(os.path.join(d, f)))
    out = {}
    for k, v in sd.items():
        if k.endswith("_scale_inv"):
            continue
        if v.dtype == torch.float8_e4m3fn:
            v = dequantize_block_fp8(v, sd[k + "_scale_inv"])
        out[k] = v.float()
    return out


# --------------------------------------------------------------------------------------------

def write_safetensors_sorted(tensors, path, metadata):
    """safetensors writer with a byte-stable header (the library orders __metadata__ by hash)."""
    names = {torch.float32: "F32", torch.int32: "I32"}
    header, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        raw = t.numpy().tobytes()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def tensor_listing(d):
    rows = []
    for f in sorted(os.listdir(d)):
        if f.startswith("model") and f.endswith(".safetensors"):
            with safe_open(os.path.join(d, f), "pt") as fh:
                for k in fh.keys():
                    sl = fh.get_slice(k)
                    rows.append((k, sl.get_dtype(), list(sl.get_shape()), f))
    return sorted(rows)


def build_case(idx, name, cls_name, cfg_fn, storage, seed, out_root):
    torch.manual_seed(seed * 1000 + idx)
    gen = torch.Generator().manual_seed(seed * 1000 + idx)
    cfg = cfg_fn()
    cls = getattr(transformers, cls_name)
    model = cls(cfg).float().eval()
    randomize(model, gen)
    if cfg.tie_word_embeddings:
        model.tie_weights()
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    d = os.path.join(out_root, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)

    model_type = cfg.model_type
    is_moe = model_type in ("mixtral", "deepseek_v2", "deepseek_v3", "qwen3_moe")

    # --- write weights ---
    if storage == "fp32" and not is_moe:
        model.save_pretrained(d, safe_serialization=True)
    elif storage == "bf16_sharded":
        rounded = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
        model = model.to(torch.bfloat16)
        total = sum(p.numel() * 2 for p in model.state_dict().values())
        model.save_pretrained(d, safe_serialization=True, max_shard_size=int(total * 0.6))
        # Reference: a FRESH fp32 model holding the bf16-rounded weights. (Casting the model itself
        # back with .float() would also leave the rotary inv_freq buffer bf16-rounded.)
        model = cls(cfg).float().eval()
        model.load_state_dict({k: v.float() for k, v in rounded.items()}, strict=True)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            shutil.copy(os.path.join(tmp, "config.json"), os.path.join(d, "config.json"))
            gc = os.path.join(tmp, "generation_config.json")
            if os.path.exists(gc):
                shutil.copy(gc, os.path.join(d, "generation_config.json"))
            saved = load_file(os.path.join(tmp, "model.safetensors"))
        hub = to_hub_layout(saved, model_type) if any("experts.gate_up_proj" in k for k in saved) else saved
        if storage == "fp8":
            qsd = {}
            for k, v in hub.items():
                if is_fp8_target(k):
                    q, s = quantize_block_fp8(v)
                    qsd[k] = q
                    qsd[k + "_scale_inv"] = s
                elif k.endswith("e_score_correction_bias"):
                    qsd[k] = v.float()          # F32 in the real DeepSeek-V3 checkpoint too
                else:
                    qsd[k] = v.to(torch.bfloat16)  # like DeepSeek-V3: everything else BF16
            hub = qsd
            with open(os.path.join(d, "config.json")) as f:
                cj = json.load(f)
            cj["dtype"] = "bfloat16"  # what save_pretrained writes for a bf16 model
            cj["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3",
                                         "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cj, f, indent=2, sort_keys=True)
                f.write("\n")
        save_file({k: v.contiguous() for k, v in sorted(hub.items())},
                  os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        if storage == "fp8":
            # the reference model runs on the dequantised weights
            deq = load_dir_state_dict(d)
            ref_model = cls(cfg).float().eval()
            load_hub_into(ref_model, deq, model_type)
            model = ref_model

    # --- reference ---
    # Draw prompts until the reference is robust: greedy continuation not degenerate (>= 3 distinct
    # tokens), greedy top-1/top-2 margin >= 0.01, and no near-tie in any router selection (gap >= 1e-3),
    # so that a correct fp32 reimplementation cannot flip a choice by rounding.
    rg = torch.Generator().manual_seed(seed * 1000 + idx + 500)
    best = None
    for _attempt in range(60):
        ids = torch.randint(1, VOCAB, (PROMPT_LEN,), generator=rg)
        ids2 = torch.randint(1, VOCAB, (PROMPT2_LEN,), generator=rg)
        ref = reference(model, ids, ids2)
        margin, rgap = robustness(model, ref)
        ok = len(set(ref["decode_ids"].tolist())) >= 3 and margin >= 0.01 and rgap >= 1e-3
        score = (ok, min(margin / 0.01, rgap / 1e-3, 1.0))
        if best is None or score > best[0]:
            best = (score, ids, ids2, ref, margin, rgap)
        if ok:
            break
    _, ids, ids2, ref, margin, rgap = best
    diag = diagnostics(model, ids)
    am = ref["prefill_logits"].argmax(-1)
    n_distinct = len(set(am.tolist()))
    assert n_distinct >= 3, f"{name}: logits too flat, argmaxes {am.tolist()}"
    write_safetensors_sorted(ref, os.path.join(d, "reference.safetensors"), REF_METADATA)
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump({
            "case": name,
            "architecture": cls_name,
            "storage": storage,
            "expert_layout": ("hub per-expert" if is_moe else "n/a"),
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "seed": seed,
            "input_ids": ref["input_ids"].tolist(),
            "decode_ids": ref["decode_ids"].tolist(),
            "input_ids_2": ref["input_ids_2"].tolist(),
            "prefill_argmax": am.tolist(),
            "decode_semantics": REF_METADATA["decode_logits"],
            "diagnostics": diag,
            "min_greedy_margin": round(margin, 5),
            "min_router_selection_gap": (round(rgap, 6) if rgap != float("inf") else None),
        }, f, indent=1)
        f.write("\n")

    # --- verify by reloading ---
    if storage == "fp8":
        m2 = cls(cfg).float().eval()
        load_hub_into(m2, load_dir_state_dict(d), model_type)
        how = "dequantised-manual-load"
    else:
        m2 = cls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        how = "from_pretrained"
    ref2 = reference(m2, ids, ids2)
    err = max((ref[k].float() - ref2[k].float()).abs().max().item() for k in ref)
    assert err <= 1e-5, f"{name}: reload mismatch {err}"
    return d, err, how, am.tolist(), ref["decode_ids"].tolist()


@torch.no_grad()
def build_greedy_case(idx, name, cls_name, cfg_fn, seed, out_root):
    """A model saved as the hub does, and transformers' greedy continuation of a few prompts, each
    generated alone (no padding). Prompts are redrawn until every greedy step has a top-1/top-2
    margin >= 0.01 and no router choice is within 1e-3 of a tie."""
    torch.manual_seed(seed * 1000 + 100 + idx)
    gen = torch.Generator().manual_seed(seed * 1000 + 100 + idx)
    cfg = cfg_fn()
    cls = getattr(transformers, cls_name)
    model = cls(cfg).float().eval()
    randomize(model, gen)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    d = os.path.join(out_root, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with tempfile.TemporaryDirectory() as tmp:
        model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
        shutil.copy(os.path.join(tmp, "config.json"), os.path.join(d, "config.json"))
        saved = load_file(os.path.join(tmp, "model.safetensors"))
    hub = to_hub_layout(saved, cfg.model_type) if any("experts.gate_up_proj" in k for k in saved) else saved
    save_file({k: v.contiguous() for k, v in sorted(hub.items())}, os.path.join(d, "model.safetensors"),
              metadata={"format": "pt"})
    model = cls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()

    rg = torch.Generator().manual_seed(seed * 1000 + 100 + idx + 500)
    cases = []
    for n in GREEDY_PROMPT_LENS:
        for _attempt in range(100):
            ids = torch.randint(1, VOCAB, (n,), generator=rg)
            out = model.generate(input_ids=ids[None].long(), attention_mask=torch.ones(1, n, dtype=torch.long),
                                 max_new_tokens=GREEDY_NEW_TOKENS, min_new_tokens=GREEDY_NEW_TOKENS,
                                 do_sample=False, output_scores=True, return_dict_in_generate=True,
                                 pad_token_id=0)
            new = out.sequences[0, n:]
            top = torch.stack(out.scores)[:, 0].topk(2, -1).values
            margin = (top[:, 0] - top[:, 1]).min().item()
            rgap = router_gaps(model, [out.sequences[0]])
            if margin >= 0.01 and rgap >= 1e-3 and len(set(new.tolist())) >= 4:
                break
        else:
            raise RuntimeError(f"{name}: no robust prompt of length {n}")
        cases.append({"prompt_ids": ids.tolist(), "greedy_ids": new.tolist(),
                      "min_greedy_margin": round(margin, 5),
                      "min_router_selection_gap": (round(rgap, 6) if rgap != float("inf") else None)})
    with open(os.path.join(d, "greedy.json"), "w") as f:
        json.dump({"case": name, "architecture": cls_name, "transformers_version": transformers.__version__,
                   "torch_version": torch.__version__, "seed": seed,
                   "semantics": "greedy_ids = transformers generate(prompt_ids, do_sample=False, "
                                f"max_new_tokens={GREEDY_NEW_TOKENS}), each prompt alone, fp32, eager",
                   "cases": cases}, f, indent=1)
        f.write("\n")
    return d, [c["greedy_ids"] for c in cases]


@torch.no_grad()
def router_gaps(model, seqs):
    """Smallest gap, over all tokens/layers, between the last selected and the first rejected
    candidate of every top-k the routers take (groups and experts)."""
    cfg = model.config
    gates = [l.mlp.gate for l in model.model.layers if hasattr(l.mlp, "gate")]
    if not gates:
        return float("inf")
    outs = []
    hooks = [g.register_forward_hook(lambda m, i, o: outs.append((m, o[0]))) for g in gates]
    for sq in seqs:
        model(input_ids=sq[None].long(), use_cache=False)
    for h in hooks:
        h.remove()

    def gap(x, k):
        v = torch.topk(x, min(k + 1, x.shape[-1]), -1).values
        return (v[:, k - 1] - v[:, k]).min().item() if x.shape[-1] > k else float("inf")

    best = float("inf")
    for g, logits in outs:
        logits = logits.float()
        k = cfg.num_experts_per_tok
        if cfg.model_type == "deepseek_v3":
            sc = logits.sigmoid() + g.e_score_correction_bias
            gs = sc.view(-1, cfg.n_group, sc.shape[-1] // cfg.n_group).topk(2, -1).values.sum(-1)
            best = min(best, gap(gs, cfg.topk_group))
            gi = torch.topk(gs, cfg.topk_group, -1).indices
            mask = torch.zeros_like(gs).scatter_(1, gi, 1).repeat_interleave(sc.shape[-1] // cfg.n_group, 1)
            best = min(best, gap(sc.masked_fill(mask == 0, float("-inf")), k))
        elif cfg.model_type == "deepseek_v2":
            sc = logits.softmax(-1)
            if cfg.topk_method == "group_limited_greedy":
                gs = sc.view(-1, cfg.n_group, sc.shape[-1] // cfg.n_group).max(-1).values
                best = min(best, gap(gs, cfg.topk_group))
                gi = torch.topk(gs, cfg.topk_group, -1).indices
                mask = torch.zeros_like(gs).scatter_(1, gi, 1).repeat_interleave(sc.shape[-1] // cfg.n_group, 1)
                sc = sc.masked_fill(mask == 0, 0.0)
            best = min(best, gap(sc, k))
        else:
            best = min(best, gap(logits.softmax(-1), k))
    return best


@torch.no_grad()
def robustness(model, ref):
    rows = torch.cat([ref["prefill_logits"][-1:], ref["decode_logits"][:-1]])
    top = rows.topk(2, -1).values
    margin = (top[:, 0] - top[:, 1]).min().item()
    seq1 = torch.cat([ref["input_ids"], ref["decode_ids"]])
    return margin, router_gaps(model, [seq1, ref["input_ids_2"]])


@torch.no_grad()
def diagnostics(model, ids):
    """Values a reimplementation can compare against, and proof that the special paths are hit."""
    cfg = model.config
    rot = model.model.rotary_emb
    d = {"rope_type": rot.rope_type,
         "rope_inv_freq": [float(x) for x in rot.inv_freq],
         "rope_attention_scaling": float(rot.attention_scaling)}
    attn = model.model.layers[0].self_attn
    d["softmax_scale"] = float(attn.scaling)
    if rot.rope_type == "llama3":
        rp = cfg.rope_parameters
        base = rp["rope_theta"]
        hd = cfg.head_dim
        wl = [2 * math.pi * base ** (2 * i / hd) for i in range(hd // 2)]  # unscaled wavelengths
        hi = rp["original_max_position_embeddings"] / rp["high_freq_factor"]
        lo = rp["original_max_position_embeddings"] / rp["low_freq_factor"]
        bands = ["high(unchanged)" if w < hi else "low(/factor)" if w > lo else "medium(smoothed)" for w in wl]
        assert len(set(bands)) == 3, bands
        d["llama3_bands"] = bands
    # routing: record what the routers chose and whether grouping / bias changed the choice
    gates = [(i, l.mlp.gate) for i, l in enumerate(model.model.layers) if hasattr(l.mlp, "gate")]
    if gates:
        seen = {}
        hooks = [g.register_forward_hook(lambda m, inp, out, i=i: seen.__setitem__(i, (inp[0], out)))
                 for i, g in gates]
        model(input_ids=ids[None].long(), use_cache=False)
        for h in hooks:
            h.remove()
        routing = {}
        for i, g in gates:
            x, out = seen[i]
            logits, weights, idx = out[0], out[1], out[2]
            order = torch.argsort(idx, dim=-1)
            r = {"topk_indices_sorted": torch.gather(idx, 1, order).tolist(),
                 "topk_weights_by_sorted_index": [[round(float(v), 6) for v in row]
                                                  for row in torch.gather(weights, 1, order)]}
            k = idx.shape[1]
            if cfg.model_type == "deepseek_v3":
                s_ = logits.float().sigmoid()
                plain = set(map(tuple, torch.topk(s_, k, -1)[1].sort(-1)[0].tolist()))
                biased = set(map(tuple, torch.topk(s_ + g.e_score_correction_bias, k, -1)[1].sort(-1)[0].tolist()))
                got = set(map(tuple, torch.gather(idx, 1, order).tolist()))
                r["tokens_where_bias_changes_choice"] = int(sum(
                    a != b for a, b in zip(torch.topk(s_, k, -1)[1].sort(-1)[0].tolist(),
                                           torch.topk(s_ + g.e_score_correction_bias, k, -1)[1].sort(-1)[0].tolist())))
                r["tokens_where_group_limit_changes_choice"] = int(sum(
                    a != b for a, b in zip(torch.topk(s_ + g.e_score_correction_bias, k, -1)[1].sort(-1)[0].tolist(),
                                           torch.gather(idx, 1, order).tolist())))
            elif cfg.model_type == "deepseek_v2" and cfg.topk_method == "group_limited_greedy":
                s_ = logits.float().softmax(-1)
                r["tokens_where_group_limit_changes_choice"] = int(sum(
                    a != b for a, b in zip(torch.topk(s_, k, -1)[1].sort(-1)[0].tolist(),
                                           torch.gather(idx, 1, order).tolist())))
            routing[f"layer{i}"] = r
        d["routing_prompt1"] = routing
    return d


def load_hub_into(model, hub_sd, model_type):
    """Loads a hub-layout (per-expert) fp32 state dict into a transformers-5 model (fused experts)."""
    sd = {}
    fused = {}
    for k, v in hub_sd.items():
        kk = k.replace(".block_sparse_moe.", ".mlp.")
        parts = kk.split(".")
        if ".mlp.experts." in kk and parts[-3].isdigit():
            pre = kk.split("mlp.experts.")[0] + "mlp.experts."
            e = int(parts[-3])
            proj = parts[-2]
            proj = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}.get(proj, proj)
            fused.setdefault(pre, {}).setdefault(proj, {})[e] = v
        else:
            sd[kk] = v
    for pre, projs in fused.items():
        n = len(projs["gate_proj"])
        sd[pre + "gate_up_proj"] = torch.stack(
            [torch.cat([projs["gate_proj"][e], projs["up_proj"][e]], 0) for e in range(n)])
        sd[pre + "down_proj"] = torch.stack([projs["down_proj"][e] for e in range(n)])
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith("lm_head.weight") or not model.config.tie_word_embeddings]
    assert not unexpected and not missing, (missing, unexpected)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="tests/fixtures/models")
    ap.add_argument("--only", nargs="*", default=None, help="case names to (re)build")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    transformers.logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)

    for idx, (name, cls_name, cfg_fn, storage) in enumerate(CASES):
        if args.only and name not in args.only:
            continue
        d, err, how, am, dec = build_case(idx, name, cls_name, cfg_fn, storage, args.seed, args.out)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{name:20s} {size / 1024:8.1f} KiB  reload({how}) max|diff|={err:.2e}  "
              f"prefill argmax={am} decode={dec}")
    for idx, (name, cls_name, cfg_fn) in enumerate(GREEDY_CASES):
        if args.only and name not in args.only:
            continue
        d, greedy = build_greedy_case(idx, name, cls_name, cfg_fn, args.seed, args.out)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{name:20s} {size / 1024:8.1f} KiB  greedy={greedy}")
    total = 0
    for root, _, files in os.walk(args.out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"total fixtures under {args.out}: {total / 1e6:.3f} MB")
    if total >= 7.5e6:
        print("WARNING: fixtures exceed 7.5 MB", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs llama.cpp's convert_hf_to_gguf.py (path as the first argument, then its own arguments) on
Debian 12's torch 1.13, which lacks the dtypes torch 2 added (float8_*, uint16/32/64). The
converter only names them in lookup tables; each missing one becomes a distinct placeholder that no
real tensor has. Enough for F32/BF16/F16 checkpoints (the benchmark models); not for FP8 ones.

It also writes `deepseek2.attention.q_lora_rank = 0` for a DeepSeek-V2/V3 checkpoint without a
query LoRA (`q_lora_rank: null`, as DeepSeek-V2-Lite). llama.cpp's loader tells such a model apart
by its layer count alone (26 or 27 layers: Lite) and otherwise requires the key, so the benchmark's
4-layer Lite-shaped model would not load; 0 is what its loader then reads as "no query LoRA" (it
makes `attn_q` instead of `attn_q_a`/`attn_q_b`), the same attention as the checkpoint's.
"""

import os
import runpy
import sys

import torch

for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
             "float8_e8m0fnu", "uint16", "uint32", "uint64"):
    if not hasattr(torch, name):
        setattr(torch, name, type(f"missing_{name}", (), {})())

script = sys.argv[1]
sys.argv = sys.argv[1:]
# The converter imports its own package (conversion/) and gguf-py from beside it.
here = os.path.dirname(os.path.abspath(script))
sys.path.insert(0, here)
sys.path.insert(1, os.path.join(here, "gguf-py"))

import gguf  # noqa: E402  (the converter's own copy, found through the paths above)

_add_kv_lora_rank = gguf.GGUFWriter.add_kv_lora_rank


def _add_kv_lora_rank_after_q(self, length):
    key = gguf.Keys.Attention.Q_LORA_RANK.format(arch=self.arch)
    if self.arch == "deepseek2" and not any(key in kv for kv in self.kv_data):
        self.add_q_lora_rank(0)
    _add_kv_lora_rank(self, length)


gguf.GGUFWriter.add_kv_lora_rank = _add_kv_lora_rank_after_q
runpy.run_path(script, run_name="__main__")

#!/usr/bin/env python3
"""Runs llama.cpp's convert_hf_to_gguf.py (path as the first argument, then its own arguments) on
Debian 12's torch 1.13, which lacks the dtypes torch 2 added (float8_*, uint16/32/64). The
converter only names them in lookup tables; each missing one becomes a distinct placeholder that no
real tensor has. Enough for F32/BF16/F16 checkpoints (the benchmark models); not for FP8 ones.
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
# The converter imports its own package (conversion/) from beside it.
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")

#!/usr/bin/env bash
# Rebuilds models/default from scratch: convert the stories260K teacher, sample its corpus, train the
# DeepSeek-V3 MoE student, export it + the reference fixture, then train its multi-token-prediction
# layer (train_mtp.py). CPU only; about an hour on one core.
# Environment: MOESERVE (binary, default build/bin/moeserve), STEPS (default 1200), SEED (default 1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$root/tools/distill/work"
data="${MOESERVE_TEST_DATA:-$root/../shared/data}/models/stories260K"
moeserve="${MOESERVE:-$root/build/bin/moeserve}"
seed="${SEED:-1}"
mkdir -p "$work"
"$moeserve" convert --llama2c "$data/stories260K.bin" --tokenizer "$data/tok512.bin" --out "$work/teacher"
python3 "$root/tools/distill/gen_corpus.py" --teacher "$work/teacher" --out "$work/val.u16" \
  --tokens 65536 --batch 256 --seed $((seed + 1))
python3 "$root/tools/distill/gen_corpus.py" --teacher "$work/teacher" --out "$work/train.u16" \
  --tokens 1500000 --batch 1024 --seed "$seed"
python3 "$root/tools/distill/train.py" --teacher "$work/teacher" --train "$work/train.u16" --val "$work/val.u16" \
  --out "$work/run" --steps "${STEPS:-1200}" --batch 16 --lr 3e-3 --warmup 30 --eval-every 200 \
  --ckpt-every 50 --val-seqs 32 --seed "$seed"
python3 "$root/tools/distill/export.py" --ckpt "$work/run/ckpt" --teacher "$work/teacher" \
  --dst "$root/models/default" --val "$work/val.u16"
python3 "$root/tools/distill/train_mtp.py" --model "$root/models/default" --train "$work/train.u16" \
  --val "$work/val.u16" --dst "$root/models/default" --steps "${MTP_STEPS:-1500}" --batch 8 --lr 3e-3 \
  --seed "$seed"

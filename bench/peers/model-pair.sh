#!/usr/bin/env bash
# A random-weight model for side-by-side runs with llama.cpp: `moeserve make-model` from a
# bench/configs file (bf16, seed 0) with a tokenizer from the shared test data, and its GGUF twin
# (bf16) from llama.cpp's convert_hf_to_gguf.py. Both are cached under
# $MOESERVE_PEERS_CACHE/models (default ~/.cache/moeserve-peers/models) and remade when the config
# changes (the GGUF also when bench/peers/convert_hf_to_gguf_compat.py does).
#
#   eval "$(bench/peers/build-llama-cpp.sh | grep '^LLAMA_')"    # LLAMA_CONVERT
#   eval "$(bench/peers/model-pair.sh build/bin/moeserve qwen2-0.5b qwen2_0_5b qwen3 | grep '^MODEL_')"
#   # MODEL_DIR (Hugging Face directory), MODEL_GGUF
#
# Arguments: MOESERVE_BIN NAME CONFIG (bench/configs/CONFIG.json) TOKENIZER (tokenizers/TOKENIZER
# of $MOESERVE_TEST_DATA, default ../shared/data). Runs under `nice -n 10`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
moeserve="$1" name="$2" config="$root/bench/configs/$3.json" tok="$4"
data="${MOESERVE_TEST_DATA:-$root/../shared/data}"
models="${MOESERVE_PEERS_CACHE:-$HOME/.cache/moeserve-peers}/models"
dir="$models/$name"
gguf="$models/$name.gguf"
log() { echo "model-pair: $*" >&2; }

[[ -f "$data/tokenizers/$tok/tokenizer.json" ]] || { log "missing $data/tokenizers/$tok (set MOESERVE_TEST_DATA)"; exit 2; }
[[ -n "${LLAMA_CONVERT:-}" ]] || { log "LLAMA_CONVERT is not set (bench/peers/build-llama-cpp.sh)"; exit 2; }
mkdir -p "$models"
if ! cmp -s "$config" "$dir/.source-config.json" 2>/dev/null; then
  log "making $name"
  rm -rf "$dir" "$gguf"
  nice -n 10 "$moeserve" make-model --config "$config" --out "$dir" --seed 0 --dtype bf16 >&2
  cp "$data/tokenizers/$tok/tokenizer.json" "$data/tokenizers/$tok/tokenizer_config.json" "$dir/"
  cp "$config" "$dir/.source-config.json"
fi
# The GGUF is remade when the conversion wrapper changes (it decides metadata llama.cpp reads).
stamp="$(sha256sum "$root/bench/peers/convert_hf_to_gguf_compat.py" | cut -c1-16)"
if [[ -f "$gguf" && "$(cat "$gguf.source-convert" 2>/dev/null)" != "$stamp" ]]; then rm -f "$gguf"; fi
if [[ ! -f "$gguf" ]]; then
  log "converting $name to GGUF"
  # shellcheck disable=SC2086
  nice -n 10 $LLAMA_CONVERT "$dir" --outtype bf16 --outfile "$gguf.tmp" >"$models/convert-$name.log" 2>&1 ||
    { tail -20 "$models/convert-$name.log" >&2; exit 1; }
  mv "$gguf.tmp" "$gguf"
  echo "$stamp" >"$gguf.source-convert"
fi
echo "MODEL_DIR=$dir"
echo "MODEL_GGUF=$gguf"

#!/usr/bin/env bash
# Builds moeserve and runs it on the default model.
#
# Until the embedded default model (models/default) and the gRPC server land, this converts the
# llama2.c stories260K model from the shared test data into build/models/stories260K and generates
# a story from it. Extra arguments go to `moeserve generate` (e.g. --prompt "Once upon a time").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
BUILD_DIR="$build_dir" "$root/scripts/build.sh" >&2
moeserve="$build_dir/bin/moeserve"

model="$root/models/default"
if [[ ! -f "$model/config.json" ]]; then
  data="${MOESERVE_TEST_DATA:-$root/../shared/data}"
  model="$build_dir/models/stories260K"
  if [[ ! -f "$model/config.json" ]]; then
    "$moeserve" convert --llama2c "$data/models/stories260K/stories260K.bin" \
      --tokenizer "$data/models/stories260K/tok512.bin" --out "$model"
  fi
fi
exec "$moeserve" generate --model "$model" --max-tokens 256 "$@"

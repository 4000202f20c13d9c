#!/usr/bin/env bash
# Builds moeserve and serves the embedded default model (models/default) over gRPC on
# 127.0.0.1:50051, metrics on 127.0.0.1:9400. Extra arguments go to `moeserve serve`.
#
# Without models/default (a checkout from before the embedded model), it converts llama2.c's
# stories260K from the shared test data into build/models/stories260K and serves that.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
BUILD_DIR="$build_dir" "$root/scripts/build.sh" >&2
bin="$build_dir/bin"

model="$root/models/default"
if [[ ! -f "$model/config.json" ]]; then
  data="${MOESERVE_TEST_DATA:-$root/../shared/data}"
  model="$build_dir/models/stories260K"
  if [[ ! -f "$model/config.json" ]]; then
    "$bin/moeserve" convert --llama2c "$data/models/stories260K/stories260K.bin" \
      --tokenizer "$data/models/stories260K/tok512.bin" --out "$model"
  fi
fi
echo "moeserve: serving $model; try: $bin/moeserve-cli --addr 127.0.0.1:50051 \"Once upon a time\"" >&2
exec "$bin/moeserve" serve --model "$model" --log-level info "$@"

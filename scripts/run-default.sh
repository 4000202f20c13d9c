#!/usr/bin/env bash
# Builds moeserve and serves the embedded default model (models/default) over gRPC on
# 127.0.0.1:50051 and HTTP (OpenAI API, /health, /metrics) on 127.0.0.1:8000. Extra arguments go
# to `moeserve serve`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
BUILD_DIR="$build_dir" "$root/scripts/build.sh" >&2
bin="$build_dir/bin"
cat >&2 <<EOF
moeserve: serving $root/models/default; try, from another terminal:
  $bin/moeserve-cli --addr 127.0.0.1:50051 "Once upon a time"
  curl -s 127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\
    -d '{"model": "default", "prompt": "Once upon a time", "max_tokens": 30}'
EOF
exec "$bin/moeserve" serve --model "$root/models/default" --log-level info "$@"

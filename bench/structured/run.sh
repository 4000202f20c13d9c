#!/usr/bin/env bash
# Structured-output benchmark in one command (docs/PERF.md): compile time and per-token mask time
# of every acceptance-test JSON Schema, the regexes and json_object on DeepSeek-V3's 129k-token
# vocabulary, for moeserve and, side by side on the same constraints and the same token sequences,
# xgrammar from PyPI (a reference only, never in the server). Builds moeserve-structured-bench into
# $BUILD_DIR (default build) if needed. xgrammar imports torch: the script uses Debian's
# python3-torch (apt-get, when missing and run as root) and pip-installs xgrammar and its other
# dependencies into a folder under ~/.cache; XGRAMMAR=0 skips that part.
#   bench/structured/run.sh [--walks N] [--max-steps N]
# SKIP_BUILD=1: use the built bench as it is. ONLY=REGEX: only the constraints whose names match
# (e.g. ONLY=triggered: the tool_choice "auto" rows).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
data="${MOESERVE_TEST_DATA:-$root/../shared/data}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
[[ "${SKIP_BUILD:-0}" == 1 ]] || cmake --build "$build" --target moeserve-structured-bench
python3 "$root/bench/structured/make_constraints.py" ${ONLY:+--only "$ONLY"} > "$work/constraints.jsonl"
echo "== moeserve"
"$build/bin/moeserve-structured-bench" --tokenizer "$data/tokenizers/deepseek_v3" \
  --constraints "$work/constraints.jsonl" --walks 2 --max-steps 200 --tokens-out "$work/walks.jsonl" "$@"
[[ "${XGRAMMAR:-1}" != 0 ]] || exit 0

echo "== xgrammar (same constraints, same token sequences)"
py=/usr/bin/python3  # Debian's, for python3-torch
if ! "$py" -c "import torch" 2>/dev/null; then
  if [[ $(id -u) == 0 ]]; then apt-get install -y -q python3-torch python3-pip >/dev/null; fi
fi
site="${XDG_CACHE_HOME:-$HOME/.cache}/moeserve-peers/xgrammar-0.2.9"
if [[ ! -f "$site/.installed" ]]; then
  "$py" -m pip install -q --target "$site" --no-deps "xgrammar==0.2.9"
  "$py" -m pip install -q --target "$site" apache-tvm-ffi pydantic "transformers>=4.38" "typing-extensions>=4.9" "numpy<2"
  touch "$site/.installed"
fi
PYTHONPATH="$site" "$py" "$root/bench/structured/xgrammar_replay.py" --tokenizer "$data/tokenizers/deepseek_v3" \
  --constraints "$work/constraints.jsonl" --walks "$work/walks.jsonl"

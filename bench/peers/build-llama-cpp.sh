#!/usr/bin/env bash
# Builds llama.cpp from source, for side-by-side comparisons with moeserve (never part of moeserve).
#
# The source comes from the llama-cpp-python source distribution on PyPI, which vendors llama.cpp
# (`pip download --no-binary :all: --no-deps llama-cpp-python==VERSION`). Everything lives in a
# cache outside the repository and is reused on later runs:
#   $MOESERVE_PEERS_CACHE (default ~/.cache/moeserve-peers)/llama-cpp-python-VERSION/
#     src/            the unpacked sdist; vendor/llama.cpp is llama.cpp itself
#     build/bin/      llama-server, llama-bench (GGML_NATIVE: built for this machine's CPU)
#     convert-venv/   a venv (system site packages: Debian's python3-torch) with transformers and
#                     gguf-py, to run llama.cpp's convert_hf_to_gguf.py
# Usage:
#   bench/peers/build-llama-cpp.sh [--no-convert]   # prints KEY=VALUE lines on stdout (last lines):
#     LLAMA_CPP_DIR, LLAMA_SERVER, LLAMA_BENCH, LLAMA_CONVERT (a command: venv python + script)
#   eval "$(bench/peers/build-llama-cpp.sh | grep '^LLAMA_')"
# Environment: LLAMA_CPP_PYTHON_VERSION (default 0.3.36), JOBS (default 2), MOESERVE_PEERS_CACHE.
# The build runs under `nice -n 10` so that it does not starve other work on a shared machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache="${MOESERVE_PEERS_CACHE:-$HOME/.cache/moeserve-peers}"
base="$cache/llama-cpp-python-$version"
src="$base/src"
llama="$src/vendor/llama.cpp"
build="$base/build"
jobs="${JOBS:-2}"
with_convert=1
[[ "${1:-}" == "--no-convert" ]] && with_convert=0

log() { echo "build-llama-cpp: $*" >&2; }

mkdir -p "$base"
if [[ ! -f "$llama/CMakeLists.txt" ]]; then
  log "downloading the llama-cpp-python $version sdist from PyPI"
  rm -rf "$base/sdist" "$src"
  python3 -m pip download --quiet --disable-pip-version-check --no-binary :all: --no-deps \
    -d "$base/sdist" "llama-cpp-python==$version" >&2
  mkdir -p "$src"
  tar -xzf "$base"/sdist/llama_cpp_python-*.tar.gz -C "$src" --strip-components=1
fi

if [[ ! -x "$build/bin/llama-server" || ! -x "$build/bin/llama-bench" ]]; then
  log "building llama-server and llama-bench ($jobs jobs, nice 10)"
  generator=()
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  nice -n 10 cmake -S "$llama" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_USE_CCACHE=OFF -DGGML_CCACHE=OFF >&2
  nice -n 10 cmake --build "$build" -j "$jobs" --target llama-server llama-bench >&2
fi

convert=""
if ((with_convert)); then
  venv="$base/convert-venv"
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import torch, transformers, gguf" 2>/dev/null; then
    # Debian's CPU-only torch: PyPI's torch wheels pull gigabytes of CUDA libraries.
    MOESERVE_WITH_PEER_BENCH=1 "$root/scripts/install-deps.sh" >&2
    log "creating the converter venv"
    # Debian's interpreter: its dist-packages hold python3-torch (another python3 may come first),
    # built against numpy 1.x (Debian's 1.24 is kept: numpy<2).
    rm -rf "$venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "numpy<2" "transformers>=4.45,<5" sentencepiece "$llama/gguf-py" >&2
  fi
  convert="$venv/bin/python $root/bench/peers/convert_hf_to_gguf_compat.py $llama/convert_hf_to_gguf.py"
fi

echo "LLAMA_CPP_DIR=$llama"
echo "LLAMA_SERVER=$build/bin/llama-server"
echo "LLAMA_BENCH=$build/bin/llama-bench"
echo "LLAMA_CONVERT=\"$convert\""

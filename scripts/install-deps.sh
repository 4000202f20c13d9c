#!/usr/bin/env bash
# Installs the Debian packages moeserve builds against, and the Python packages some tests use
# (never the server). Idempotent: installs only what is missing.
# Shared by the README, .ci/run and the Dockerfile.
#   MOESERVE_WITH_GRPC=0          skip gRPC/Protobuf and the HTTP server's Boost (engine-only build)
#   MOESERVE_WITH_PYTHON_TESTS=0  skip the Python test packages (container builds)
#   MOESERVE_WITH_PEER_BENCH=1    add what the llama.cpp comparison needs (bench/peers/): Debian's
#                                 CPU-only torch for llama.cpp's GGUF converter
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libabsl-dev nlohmann-json3-dev libpcre2-dev libicu-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libboost-dev
  libopenmpi-dev openmpi-bin
  libopenblas-dev libdnnl-dev  # only bench/cpu_gemm_vs_libs.cc: the CPU GEMM against OpenBLAS and oneDNN
  python3 python3-venv  # tests of the HTTP API run the openai SDK in a venv
  clang llvm  # the sanitizer and libFuzzer builds (scripts/sanitize.sh); llvm-symbolizer for reports
)
if [[ "${MOESERVE_WITH_GRPC:-1}" != "0" ]]; then
  # The front ends: gRPC, and the HTTP server (Boost.Beast/Asio headers above, OpenSSL for TLS).
  packages+=(libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libssl-dev)
fi
if [[ "${MOESERVE_WITH_PEER_BENCH:-0}" == "1" ]]; then
  packages+=(python3-torch python3-numpy python3-venv)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python packages for tests of the Python client and the deployment manifests (module:package).
if [[ "${MOESERVE_WITH_PYTHON_TESTS:-1}" != "0" ]] && command -v python3 >/dev/null 2>&1; then
  py_missing=()
  for spec in grpc:grpcio grpc_tools:grpcio-tools yaml:pyyaml; do
    python3 -c "import ${spec%%:*}" 2>/dev/null || py_missing+=("${spec#*:}")
  done
  if ((${#py_missing[@]} > 0)); then
    echo "install-deps: pip installing ${py_missing[*]}" >&2
    python3 -m pip install --quiet --disable-pip-version-check "${py_missing[@]}"
  fi
  # cuobjdump for the sm_90a check of the CUDA kernels (tests/cuda): the toolkit here lacks it.
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [[ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]] && ! "$root/tools/find-cuobjdump.sh" >/dev/null; then
    echo "install-deps: pip installing nvidia-cuda-cuobjdump" >&2
    python3 -m pip install --quiet --disable-pip-version-check nvidia-cuda-cuobjdump ||
      echo "install-deps: nvidia-cuda-cuobjdump not installed; the cuda_arch_check test will skip" >&2
  fi
fi

#!/usr/bin/env bash
# The CPU backend's GEMM against OpenBLAS (fp32 weights) and oneDNN (bf16 weights) on the products
# of the benchmark models (Qwen2-0.5B, DeepSeek-V2-Lite), batch 1 to 256, side by side in one
# process (issue 20; results in docs/PERF.md). From a clean clone:
#
#   bench/cpu_gemm.sh                 # THREADS=2 BATCHES=1,4,16,64,256 ROUNDS=3
#
# Installs the libraries (scripts/install-deps.sh has libopenblas-dev and libdnnl-dev), builds
# moeserve-cpu-gemm-vs-libs (scripts/build.sh into $BUILD_DIR, default build/) and prints its table:
# median microseconds per call of each and each library's time over moeserve's (> 1: moeserve is
# faster), then the load average. The machine is shared: compare the ratios, not the times.
# Environment: THREADS (2), BATCHES (1,4,16,64,256), ROUNDS (3), MODELS (qwen2,v2lite), BUILD_DIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
BUILD_DIR="$build_dir" "$root/scripts/build.sh" >&2
bin="$build_dir/bin/moeserve-cpu-gemm-vs-libs"
[[ -x "$bin" ]] || { echo "cpu_gemm: $bin was not built (libopenblas-dev, libdnnl-dev missing?)" >&2; exit 1; }
"$bin" --threads "${THREADS:-2}" --batches "${BATCHES:-1,4,16,64,256}" --rounds "${ROUNDS:-3}" \
  --models "${MODELS:-qwen2,v2lite}"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

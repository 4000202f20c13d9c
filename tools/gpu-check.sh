#!/usr/bin/env bash
# One-call GPU check for the CUDA backend (issue 6). Two modes:
#
#   Here (no GPU), build and pack the binaries with the non-system shared libraries they need
#   (Abseil, GoogleTest; not libcuda/cudart/cuBLAS, which the GPU machine has):
#     tools/gpu-check.sh pack            # -> build-cuda/gpu-bundle (git-ignored, a few MiB)
#
#   On a lent GPU machine, in one device call (carry the bundle):
#     run(command="tools/gpu-check.sh", carry=["build-cuda/gpu-bundle"], timeout_s=600)
#
# The run prints the device (nvidia-smi), the driver and where libcublas.so.13 is, then runs the
# host unit tests, the CPU-vs-CUDA parity harness, compute-sanitizer memcheck on a reduced
# harness (when the tool exists), the model parity test with --device cuda when that binary
# supports it, and ends with a one-line-per-step summary. Full logs go to $OUT (or build-cuda/gpu-check-out).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build-cuda}"
bundle="${GPU_BUNDLE:-$build_dir/gpu-bundle}"
bins=(backend_parity cuda_host_test model_parity_test)

if [[ "${1:-}" == "pack" ]]; then
  set -e
  cmake --build "$build_dir" --target "${bins[@]}" -j "${JOBS:-2}"
  rm -rf "$bundle" && mkdir -p "$bundle/bin" "$bundle/lib"
  for b in "${bins[@]}"; do
    cp "$build_dir/tests/$b" "$bundle/bin/"
    # Non-system libraries the GPU machine lacks: everything outside libc/libstdc++ and CUDA.
    ldd "$build_dir/tests/$b" | awk '/=> \//{print $3}' |
      grep -Ev '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+)\.so|libcuda|libcudart|libcublas' |
      xargs -r -I{} cp -Lu {} "$bundle/lib/"
  done
  du -sh "$bundle"
  exit 0
fi

out="${OUT:-$build_dir/gpu-check-out}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin="$bundle/bin"
[[ -x "$bin/backend_parity" ]] || bin="$build_dir/tests"
summary=()
step() {  # step NAME LOGFILE CMD...: runs CMD, logs, records rc
  local name="$1" log="$2"; shift 2
  echo "=== $name: $*"
  "$@" >"$out/$log" 2>&1
  local rc=$?
  tail -n 40 "$out/$log"
  summary+=("$(printf '%-28s rc=%-4s log=%s' "$name" "$rc" "$log")")
}

{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi || echo "nvidia-smi not found"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  echo "libcublas: $(ldconfig -p 2>/dev/null | grep -m1 'libcublas.so.13' || find / -name 'libcublas.so.13' 2>/dev/null | head -1)"
  echo "binaries: $bin"
  ldd "$bin/backend_parity" | grep -E 'not found|cublas|cudart' || true
} 2>&1 | tee "$out/device.txt"

step "cuda_host_test" host_test.log "$bin/cuda_host_test"
step "backend_parity" parity.log "$bin/backend_parity"
grep -E '^(PASS|FAIL)' "$out/parity.log" | sort | uniq -c -w4 | sed 's/^/parity: /' || true
grep '^FAIL' "$out/parity.log" | head -20 || true
if command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck; do
    step "sanitizer-$tool" "sanitizer_$tool.log" compute-sanitizer --tool "$tool" --error-exitcode 3 \
      "$bin/backend_parity" --filter Attention
  done
  step "sanitizer-memcheck-all" sanitizer_memcheck_all.log compute-sanitizer --tool memcheck \
    --error-exitcode 3 "$bin/backend_parity"
else
  summary+=("compute-sanitizer            not installed")
fi
if [[ -x "$bin/model_parity_test" ]] && "$bin/model_parity_test" --help 2>&1 | grep -q -- '--device'; then
  step "model_parity (cuda)" model_parity_cuda.log "$bin/model_parity_test" --device cuda
else
  summary+=("model_parity (cuda)          skipped: model_parity_test has no --device flag yet")
fi

echo "=== summary (logs in $out)"
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"

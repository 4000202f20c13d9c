#!/usr/bin/env bash
# One-call GPU check for the CUDA backend (issue 6). Two modes:
#
#   Here (no GPU), step 1: build and pack the binaries, the non-system shared libraries they need
#   (Abseil, GoogleTest...; not libcuda/cudart/cuBLAS, which the GPU machine has) and the test data
#   (stories260K + tokenizer, the Llama-3-8B and V2-Lite configs) into one git-ignored folder under
#   64 MiB:
#     tools/gpu-check.sh pack                            # -> build-cuda/gpu-bundle
#   The build dir (BUILD_DIR, default build-cuda) must be an engine-only CUDA build: pack configures
#   it when it is absent (cmake -S . -B build-cuda -G Ninja -DMOESERVE_CUDA=ON -DMOESERVE_GRPC=OFF
#   -DCMAKE_BUILD_TYPE=Release) and refuses a dir configured with MOESERVE_GRPC=ON (gRPC bundles
#   ICU and more: over the 64 MiB carry limit) or without CUDA. Targets that do not exist (yet) or
#   fail to build are reported and left out.
#
#   Step 2, on a lent GPU machine, in one device call (carry the bundle):
#     run(command="tools/gpu-check.sh", carry=["build-cuda/gpu-bundle"], timeout_s=600)
#   With another BUILD_DIR, pass the same BUILD_DIR to both steps and carry $BUILD_DIR/gpu-bundle.
#
# The run prints the device (nvidia-smi), the driver and where libcublas.so.13 is, then runs: the
# host unit tests, the CPU-vs-CUDA parity harness (every op), the end-to-end greedy generation
# check (random Llama-shaped model + converted stories260K, CUDA vs CPU), TP=1 vs TP=N parity over
# NCCL when the machine has >= 2 GPUs (and mpirun), compute-sanitizer
# memcheck on a reduced harness, the copy/GEMM ceilings, a random Llama-3-8B-shaped model made on
# the GPU machine and its decode step time at batch 1/64/256 against the weight-bytes roofline, the
# other engineers' bench/cuda binaries when packed, and ends with one short table. Full logs go to
# $OUT (or $BUILD_DIR/gpu-check-out). Without a GPU every device step is skipped with a message and
# the script exits 77 (nothing was verified).
#
# Environment: BUILD_DIR, GPU_BUNDLE, OUT, JOBS (pack), SKIP_8B=1 (no 8B model/bench), SKIP_V2LITE=1,
# V2LITE_LAYERS (random V2-Lite-shaped MoE model; default 4),
# LLAMA8B_LAYERS (fewer layers for a quick run; default 32), STEP_TIMEOUT (s, default 240).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build-cuda}"
bundle="${GPU_BUNDLE:-$build_dir/gpu-bundle}"
# name:path-in-build-dir. Others add their bench/cuda binaries here (absent ones are skipped).
bins=(
  cuda_host_test:tests/cuda_host_test
  backend_parity:tests/backend_parity
  model_device_parity:tests/model_device_parity
  mtp_device_parity:tests/mtp_device_parity
  moeserve:bin/moeserve
  moeserve-decode-bench:bin/moeserve-decode-bench
  moeserve-gpu-ceilings:bin/moeserve-gpu-ceilings
  dist_tp_device_parity:tests/dist_tp_device_parity
)
data_src="${MOESERVE_TEST_DATA:-$root/../shared/data}"

if [[ "${1:-}" == "pack" ]]; then
  configure=(cmake -S "$root" -B "$build_dir" -G Ninja -DMOESERVE_CUDA=ON -DMOESERVE_GRPC=OFF
             -DCMAKE_BUILD_TYPE=Release)
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    echo "pack: $build_dir is not configured: ${configure[*]}"
    "${configure[@]}" >"${TMPDIR:-/tmp}/gpu-check-configure.log" 2>&1 ||
      { tail -n 20 "${TMPDIR:-/tmp}/gpu-check-configure.log"; echo "pack: configuring $build_dir failed"; exit 1; }
  fi
  cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt" | head -1; }
  if [[ "$(cache_value MOESERVE_GRPC)" =~ ^(ON|On|on|TRUE|True|true|1|YES|Yes|yes)$ ]]; then
    echo "pack: $build_dir is configured with MOESERVE_GRPC=ON; a gRPC build bundles ICU, gRPC and"
    echo "      Protobuf libraries and goes over the 64 MiB carry limit. Use an engine-only build dir:"
    echo "        BUILD_DIR=${build_dir%/}-engine tools/gpu-check.sh pack    (pack configures it)"
    echo "      or reconfigure this one: cmake -B $build_dir -DMOESERVE_GRPC=OFF"
    exit 1
  fi
  if [[ "$(cache_value MOESERVE_CUDA)" != ON ]] && ! grep -q '^CMAKE_CUDA_FLAGS:' "$build_dir/CMakeCache.txt"; then
    echo "pack: $build_dir has no CUDA (MOESERVE_CUDA=$(cache_value MOESERVE_CUDA)); use a CUDA build dir:"
    echo "        ${configure[*]}"
    exit 1
  fi
  rm -rf "$bundle" && mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/data" "$bundle/configs"
  known=$(cmake --build "$build_dir" --target help 2>/dev/null)
  # The other areas' bench/cuda binaries: every executable whose sources live in bench/cuda/.
  for t in $({ sed -n 's/^ *add_executable(\([^ )]*\) *cuda\/.*/\1/p' "$root/bench/CMakeLists.txt"
               sed -n 's/^ *add_executable(\([^ )]*\).*/\1/p' "$root/bench/cuda/CMakeLists.txt" 2>/dev/null; } | sort -u); do
    bins+=("$t:bench/cuda/$t")
  done
  packed=()
  for entry in "${bins[@]}"; do
    name="${entry%%:*}" rel="${entry#*:}"
    if ! grep -qE "(^|[ /])$name(:|$)" <<<"$known"; then
      echo "pack: target $name does not exist in $build_dir: left out"; continue
    fi
    if ! cmake --build "$build_dir" --target "$name" -j "${JOBS:-2}" >"$bundle/build-$name.log" 2>&1; then
      echo "pack: target $name failed to build (see $bundle/build-$name.log): left out"; continue
    fi
    exe="$build_dir/$rel"
    [[ -x "$exe" ]] || exe="$(find "$build_dir" -type f -name "$name" -perm -u+x | head -1)"
    [[ -x "$exe" ]] || { echo "pack: built $name but found no executable: left out"; continue; }
    cp "$exe" "$bundle/bin/" && strip --strip-debug "$bundle/bin/$name" 2>/dev/null
    # Non-system libraries the GPU machine lacks: everything outside libc/libstdc++ and CUDA.
    ldd "$exe" | awk '/=> \//{print $3}' |
      grep -Ev '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+)\.so|libcuda|libcudart|libcublas' |
      xargs -r -I{} cp -Lu {} "$bundle/lib/"
    packed+=("$name")
    rm -f "$bundle/build-$name.log"
  done
  for f in models/stories260K/stories260K.bin models/stories260K/tok512.bin; do
    if [[ -f "$data_src/$f" ]]; then cp "$data_src/$f" "$bundle/data/"; else echo "pack: $data_src/$f missing: e2e stories260K check will skip"; fi
  done
  # The MTP fixture (1.3 MB): the mtp parity step loads it with its reference.
  cp -r "$root/tests/fixtures/models/deepseek_v3_mtp" "$bundle/data/"
  cp "$root/bench/configs/llama3_8b.json" "$bundle/configs/"
  cp "$root/bench/configs/deepseek_v2_lite.json" "$bundle/configs/"
  # Small architecture fixtures for the tensor-parallel parity step (~2 MiB).
  mkdir -p "$bundle/fixtures"
  for m in llama qwen2_bf16_sharded mixtral deepseek_v2_lite; do cp -r "$root/tests/fixtures/models/$m" "$bundle/fixtures/"; done
  echo "packed: ${packed[*]}"
  size_kib=$(du -sk "$bundle" | cut -f1)
  echo "bundle: $bundle $((size_kib / 1024)) MiB"
  (( size_kib < 64 * 1024 )) || { echo "pack: bundle is over 64 MiB: carry would refuse it"; exit 1; }
  exit 0
fi

out="${OUT:-$build_dir/gpu-check-out}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin="$bundle/bin"
data="$bundle/data"
[[ -d "$bin" ]] || { echo "no bundle at $bundle: run tools/gpu-check.sh pack first (and carry it)"; bin="$build_dir/tests"; }
work="${GPU_CHECK_WORK:-/tmp/moeserve-gpu-check}"
mkdir -p "$work"
step_timeout="${STEP_TIMEOUT:-240}"
summary=()
results=()  # "key value" lines for the final table
failed=0

has() { [[ -x "$bin/$1" ]]; }
step() {  # step NAME LOGFILE CMD...: runs CMD under a timeout, logs, records rc (77 = skip)
  local name="$1" log="$2"; shift 2
  echo "=== $name: $*"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=10 "$step_timeout" "$@" >"$out/$log" 2>&1
  local rc=$?
  tail -n 25 "$out/$log"
  local verdict=ok
  case $rc in 0) ;; 77) verdict=skip ;; 124|137) verdict=TIMEOUT; failed=1 ;; *) verdict=FAIL; failed=1 ;; esac
  summary+=("$(printf '%-26s %-7s rc=%-4s %4ss log=%s' "$name" "$verdict" "$rc" $((SECONDS - t0)) "$log")")
  return $rc
}
skip() { summary+=("$(printf '%-26s %-7s %s' "$1" skip "$2")"); echo "=== $1: skipped: $2"; }
# make_model NAME LOG CFG DIR: a random bf16 model of config CFG in DIR (made on this machine, kept
# while DIR's config equals CFG); true when DIR holds a model.
make_model() {
  local name="$1" log="$2" cfg="$3" dir="$4"
  if [[ ! -f "$dir/config.json" ]] || ! cmp -s "$cfg" "$dir/config.json"; then
    rm -rf "$dir"
    step "$name" "$log" "$bin/moeserve" make-model --config "$cfg" --out "$dir" --dtype bf16
  fi
  [[ -f "$dir/config.json" ]]
}
safetensors_bytes() { find "$1" -name '*.safetensors' -printf '%s\n' | awk '{s+=$1} END {print s}'; }

gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi
{
  echo "date: $(date -u +%FT%TZ)"
  if (( gpu )); then
    nvidia-smi
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  else
    echo "NO GPU: nvidia-smi is missing or lists no device; device steps will be skipped"
  fi
  echo "libcublas: $(ldconfig -p 2>/dev/null | grep -m1 'libcublas.so.13' || find / -name 'libcublas.so.13*' 2>/dev/null | head -1)"
  echo "binaries: $bin ($(ls "$bin" 2>/dev/null | tr '\n' ' '))"
  for b in "$bin"/*; do [[ -x "$b" ]] && ldd "$b" 2>/dev/null | grep 'not found' | sed "s|^|$(basename "$b"): |"; done
} 2>&1 | tee "$out/device.txt"

# 1. Host tests and the op parity harness.
if has cuda_host_test; then step "cuda_host_test" host_test.log "$bin/cuda_host_test"; else skip cuda_host_test "not packed"; fi
if has backend_parity; then
  step "backend_parity" parity.log "$bin/backend_parity"
  grep -cE '^PASS' "$out/parity.log" >/dev/null && results+=("parity_cases $(grep -cE '^PASS' "$out/parity.log") pass / $(grep -cE '^FAIL' "$out/parity.log") fail")
  grep '^FAIL' "$out/parity.log" | head -20
else
  skip backend_parity "not packed"
fi

# 2. End to end: greedy generation CUDA vs CPU.
if has model_device_parity; then
  args=(--device cuda)
  [[ -f "$data/stories260K.bin" ]] && args+=(--llama2c "$data/stories260K.bin")
  step "e2e cuda vs cpu" e2e.log "$bin/model_device_parity" "${args[@]}"
  while read -r line; do results+=("e2e ${line}"); done < <(grep -E '^(PASS|FAIL) ' "$out/e2e.log")
else
  skip "e2e cuda vs cpu" "model_device_parity not packed"
fi

# 2b. Tensor parallelism: TP=1 against TP=N (N = 2 or 4: the fixtures have 4 heads) on NCCL, one rank per GPU
# under mpirun: dense and MoE fixtures, the MoE ones with and without --expert-parallel; logits
# within bf16 tolerance (dist_tp_device_parity prints PASS/FAIL per model). Needs >= 2 GPUs and an
# mpirun on the GPU machine (Open MPI, as the build's); says why it skipped otherwise.
ngpus=0
(( gpu )) && ngpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
tp_n=$(( ngpus >= 4 ? 4 : 2 ))
if ! has dist_tp_device_parity; then
  skip "tp parity" "dist_tp_device_parity not packed (a build without MPI?)"
elif (( ngpus < 2 )); then
  skip "tp parity" "needs >= 2 GPUs, this machine has $ngpus"
elif ! command -v mpirun >/dev/null 2>&1; then
  skip "tp parity" "no mpirun on this machine (apt-get install openmpi-bin)"
else
  fx="$bundle/fixtures"
  mpi=(mpirun --oversubscribe --allow-run-as-root -np "$tp_n" -x LD_LIBRARY_PATH "$bin/dist_tp_device_parity"
       --tp "$tp_n" --device cuda)
  step "tp parity tp=$tp_n" tp_parity.log "${mpi[@]}" "$fx/llama" "$fx/qwen2_bf16_sharded" "$fx/mixtral" "$fx/deepseek_v2_lite"
  step "tp parity tp=$tp_n ep" tp_parity_ep.log "${mpi[@]}" --expert-parallel "$fx/mixtral" "$fx/deepseek_v2_lite"
  step "tp parity tp=$tp_n ep all-to-all" tp_parity_ep_a2a.log "${mpi[@]}" --expert-parallel --ep-dispatch alltoall \
    "$fx/mixtral" "$fx/deepseek_v2_lite"
  for f in tp_parity.log tp_parity_ep.log tp_parity_ep_a2a.log; do
    while read -r line; do results+=("tp ${line}"); done < <(grep -E '^(PASS|FAIL) tp=' "$out/$f")
  done
fi

# 2c. DeepSeek-V3 MTP (speculative decoding's drafter) on the GPU vs the torch reference.
if has mtp_device_parity && [[ -d "$data/deepseek_v3_mtp" ]]; then
  step "mtp parity" mtp.log "$bin/mtp_device_parity" --device cuda --model "$data/deepseek_v3_mtp"
  while read -r line; do results+=("mtp ${line}"); done < <(grep -E '^(PASS|FAIL) ' "$out/mtp.log")
else
  skip "mtp parity" "mtp_device_parity or its fixture not packed"
fi

# 3. compute-sanitizer memcheck on a reduced harness (a few cases per op area).
if (( gpu )) && command -v compute-sanitizer >/dev/null 2>&1 && has backend_parity; then
  for f in RmsNorm Attention RopeWriteKvCache Mla Moe Sampl; do
    step "memcheck $f" "memcheck_$f.log" compute-sanitizer --tool memcheck --error-exitcode 3 \
      "$bin/backend_parity" --filter "$f"
  done
elif (( gpu )); then
  skip memcheck "compute-sanitizer not installed (or backend_parity not packed)"
else
  skip memcheck "no GPU"
fi

# 4. Ceilings and the Llama-3-8B-shaped decode benchmark.
copy_gbps=""
if has moeserve-gpu-ceilings; then
  step "ceilings" ceilings.log "$bin/moeserve-gpu-ceilings" &&
    copy_gbps=$(sed -n 's/^copy_gbps=//p' "$out/ceilings.log") &&
    results+=("copy_bandwidth ${copy_gbps} GB/s" "bf16_gemm $(sed -n 's/^gemm_tflops=//p' "$out/ceilings.log") TFLOP/s")
else
  skip ceilings "moeserve-gpu-ceilings not packed"
fi
if (( ! gpu )); then
  skip "llama3-8b decode" "no GPU"
elif [[ -n "${SKIP_8B:-}" ]]; then
  skip "llama3-8b decode" "SKIP_8B set"
elif ! has moeserve || ! has moeserve-decode-bench; then
  skip "llama3-8b decode" "moeserve or moeserve-decode-bench not packed"
else
  model8b="$work/llama3_8b"
  cfg="$bundle/configs/llama3_8b.json"
  if [[ -n "${LLAMA8B_LAYERS:-}" ]]; then
    sed "s/\"num_hidden_layers\": 32/\"num_hidden_layers\": $LLAMA8B_LAYERS/" "$cfg" >"$work/llama3_8b_cfg.json"
    cfg="$work/llama3_8b_cfg.json"
  fi
  if make_model "make llama3-8b (random)" make_8b.log "$cfg" "$model8b"; then
    weight_bytes=$(safetensors_bytes "$model8b")
    step "llama3-8b decode" decode_8b.log "$bin/moeserve-decode-bench" --model "$model8b" --device cuda \
      --batch 1,64,256 --prompt-len 32 --steps 32 --cuda-graphs both
    results+=("llama3_8b_weights $(awk -v b="$weight_bytes" 'BEGIN{printf "%.2f GB", b/1e9}')")
    while read -r b g ms misses; do
      line="decode_b${b} graphs ${g} ${ms} ms/step, allocator misses ${misses}"
      if [[ -n "$copy_gbps" ]]; then
        # Roofline: every weight byte read once per step at the measured copy bandwidth (a copy reads
        # and writes, so its GB/s is the read+write rate: the read-only rate is at least that).
        roof=$(awk -v w="$weight_bytes" -v g="$copy_gbps" 'BEGIN{printf "%.3f", w/(g*1e9)*1e3}')
        line+=", roofline ${roof} ms, x$(awk -v m="$ms" -v r="$roof" 'BEGIN{printf "%.2f", m/r}')"
        [[ "$b" == 1 ]] && line+=" (goal <= 1.25)"
      fi
      results+=("$line")
    done < <(sed -n 's/^decode batch=\([0-9]*\) graphs=\([a-z]*\) median_ms=\([0-9.]*\) misses=\(-\?[0-9]*\)/\1 \2 \3 \4/p' "$out/decode_8b.log")
  fi
fi

# 4b. DeepSeek-V2-Lite-shaped MoE decode (issue 7): a random model of V2LITE_LAYERS layers (default
# 4: 1 dense + 3 MoE, ~4.4 GB bf16) made on the GPU machine, decode step time at batch 1/32/128
# against the bytes a step must read: every weight except the routed experts and the embedding
# table, plus the routed experts B tokens touch in expectation under uniform routing,
# 64·(1 − (1 − 6/64)^B) per MoE layer (3·2048·1408·2 bytes each), at the measured copy bandwidth.
if (( ! gpu )); then
  skip "v2-lite decode" "no GPU"
elif [[ -n "${SKIP_V2LITE:-}" ]]; then
  skip "v2-lite decode" "SKIP_V2LITE set"
elif ! has moeserve || ! has moeserve-decode-bench || [[ ! -f "$bundle/configs/deepseek_v2_lite.json" ]]; then
  skip "v2-lite decode" "moeserve, moeserve-decode-bench or the V2-Lite config not packed"
else
  v2_layers="${V2LITE_LAYERS:-4}"
  model_v2="$work/deepseek_v2_lite"
  sed "s/\"num_hidden_layers\": 27/\"num_hidden_layers\": $v2_layers/" "$bundle/configs/deepseek_v2_lite.json" >"$work/v2lite_cfg.json"
  if make_model "make v2-lite (random)" make_v2lite.log "$work/v2lite_cfg.json" "$model_v2"; then
    v2_bytes=$(safetensors_bytes "$model_v2")
    step "v2-lite decode" decode_v2lite.log "$bin/moeserve-decode-bench" --model "$model_v2" --device cuda \
      --batch 1,32,128 --prompt-len 32 --steps 32
    results+=("v2lite_weights $(awk -v b="$v2_bytes" 'BEGIN{printf "%.2f GB", b/1e9}') (${v2_layers} layers)")
    while read -r b ms misses g; do
      line="v2lite_decode_b${b}${g:+ $g} ${ms} ms/step, $(awk -v b="$b" -v m="$ms" 'BEGIN{printf "%.0f", b/(m/1e3)}') tok/s, allocator misses ${misses}"
      if [[ -n "$copy_gbps" ]]; then
        roof=$(awk -v w="$v2_bytes" -v g="$copy_gbps" -v b="$b" -v l="$((v2_layers - 1))" 'BEGIN{
          x = 3 * 2048 * 1408 * 2; t = 64 * (1 - (1 - 6 / 64) ^ b);
          e = 102400 * 2048 * 2;  # the embedding table: one row per token, not read whole
          printf "%.3f", (w - e - l * 64 * x + l * t * x) / (g * 1e9) * 1e3}')
        line+=", roofline ${roof} ms, x$(awk -v m="$ms" -v r="$roof" 'BEGIN{printf "%.2f", m/r}')"
      fi
      results+=("$line")
    done < <(sed -n 's/^decode batch=\([0-9]*\) \(graphs=[a-z]* \)\?median_ms=\([0-9.]*\) misses=\(-\?[0-9]*\)/\1 \3 \4 \2/p' "$out/decode_v2lite.log")
  fi
fi

# 5. Other areas' bench/cuda binaries (each prints its own table; logged).
for b in "$bin"/*; do
  n=$(basename "$b")
  case "$n" in moeserve|moeserve-decode-bench|moeserve-gpu-ceilings|cuda_host_test|backend_parity|model_device_parity|dist_tp_device_parity) continue ;; esac
  if (( gpu )); then step "bench $n" "bench_$n.log" "$b"; else skip "bench $n" "no GPU"; fi
done

# The attention bench's table rows (decode GB/s and % of copy, prefill TFLOP/s) in the final table.
if [[ -f "$out/bench_moeserve-attention-bench.log" ]]; then
  while read -r line; do results+=("attention ${line}"); done < <(grep -E '^(decode|prefill|chunk)' "$out/bench_moeserve-attention-bench.log")
fi

# The MoE layer bench's rows (V2-Lite layer, bf16/fp8 weights: GB/s over touched experts, TFLOP/s).
if [[ -f "$out/bench_moeserve-moe-bench.log" ]]; then
  while read -r line; do results+=("moe ${line}"); done < <(grep -E '^(bf16|fp8) ' "$out/bench_moeserve-moe-bench.log")
fi

echo
echo "=== summary (logs in $out)"
{
  printf '%s\n' "${summary[@]}"
  echo "---"
  printf '%s\n' "${results[@]}"
} | tee "$out/summary.txt"
if (( ! gpu )); then
  echo "NO GPU: nothing on the device was verified (exit 77)"
  exit 77
fi
exit $failed

// moeserve-gpu-ceilings: the two ceilings every CUDA figure is reported against (docs/GPU.md):
// device-to-device copy bandwidth (bytes read + written per second) and bf16 cuBLAS GEMM
// throughput. CUDA events after warm-up, median of the timed runs; the copy rotates over buffers
// far larger than L2 (bench/cuda/bench_ceilings.h, shared with the bench/cuda binaries). Prints
// `copy_gbps=...` and `gemm_tflops=...` lines for scripts (tools/gpu-check.sh reads them).
//
//   moeserve-gpu-ceilings [--copy-mib 1024] [--gemm 8192] [--runs 20]

#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "bench/cuda/bench_ceilings.h"

namespace mb = moeserve::bench;

int main(int argc, char** argv) {
  size_t copy_mib = 1024;
  int gemm = 8192, runs = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--copy-mib") == 0)
      copy_mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--gemm") == 0)
      gemm = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--runs") == 0)
      runs = std::atoi(argv[i + 1]);
  }
  if (!mb::HasCudaDevice()) {
    std::printf("SKIP: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop{};
  MOESERVE_BENCH_CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MiB, %.1f GiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20,
              prop.totalGlobalMem / double(1 << 30));
  cudaStream_t stream;
  MOESERVE_BENCH_CHECK_CUDA(cudaStreamCreate(&stream));

  // Copy: two pairs of buffers, alternated, each copy_mib MiB (>> 50 MiB L2).
  const size_t bytes = copy_mib << 20;
  const double copy_ms = mb::CopyMs(bytes, runs, stream);
  const double copy_gbps = mb::CopyGbps(bytes, copy_ms);
  std::printf("copy: %zu MiB d2d, median %.3f ms -> %.1f GB/s (read + write)\n", copy_mib, copy_ms, copy_gbps);

  // GEMM: bf16 in, fp32 accumulate, bf16 out, n x n x n.
  const double gemm_ms = mb::GemmMs(gemm, runs, stream);
  const double tflops = mb::GemmTflops(gemm, gemm_ms);
  std::printf("gemm: bf16 %d^3, median %.3f ms -> %.1f TFLOP/s\n", gemm, gemm_ms, tflops);
  std::printf("copy_gbps=%.1f\ngemm_tflops=%.1f\n", copy_gbps, tflops);
  MOESERVE_BENCH_CHECK_CUDA(cudaStreamDestroy(stream));
  return 0;
}

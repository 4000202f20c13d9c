#ifndef MOESERVE_BENCH_CUDA_BENCH_CEILINGS_H_
#define MOESERVE_BENCH_CUDA_BENCH_CEILINGS_H_

// The two ceilings CUDA benchmarks report against (GPU.md), measured in the benchmark's own
// process: a 1 GiB device-to-device copy (bytes read + written) and an n³ bf16 cuBLAS GEMM with
// fp32 accumulation; plus event timing (warm-up, median). Header-only for bench/cuda binaries
// (moeserve-gpu-ceilings, attention_bench and mla_bench keep their own copies for now).

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define MOESERVE_BENCH_CHECK_CUDA(expr)                                                          \
  do {                                                                                         \
    cudaError_t _e = (expr);                                                                   \
    if (_e != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(_e)); \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)

#define MOESERVE_BENCH_CHECK_CUBLAS(expr)                                                 \
  do {                                                                                  \
    cublasStatus_t _s = (expr);                                                         \
    if (_s != CUBLAS_STATUS_SUCCESS) {                                                  \
      std::fprintf(stderr, "%s:%d %s: cuBLAS status %d\n", __FILE__, __LINE__, #expr, \
                   static_cast<int>(_s));                                               \
      std::exit(1);                                                                     \
    }                                                                                   \
  } while (0)

namespace moeserve::bench {

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median milliseconds of `fn(i)` (which enqueues work on `stream`) over `iters` runs after three
// warm-up runs, each bracketed by events on `stream`.
template <class Fn>
double TimeMs(int iters, cudaStream_t stream, Fn fn) {
  cudaEvent_t a, b;
  MOESERVE_BENCH_CHECK_CUDA(cudaEventCreate(&a));
  MOESERVE_BENCH_CHECK_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) fn(i);
  MOESERVE_BENCH_CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    MOESERVE_BENCH_CHECK_CUDA(cudaEventRecord(a, stream));
    fn(i);
    MOESERVE_BENCH_CHECK_CUDA(cudaEventRecord(b, stream));
    MOESERVE_BENCH_CHECK_CUDA(cudaEventSynchronize(b));
    float t = 0;
    MOESERVE_BENCH_CHECK_CUDA(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  MOESERVE_BENCH_CHECK_CUDA(cudaEventDestroy(a));
  MOESERVE_BENCH_CHECK_CUDA(cudaEventDestroy(b));
  return Median(ms);
}

// Read + write GB/s of a 1 GiB device-to-device copy.
inline double CopyCeilingGbps(int iters) {
  const size_t bytes = size_t{1} << 30;
  void *src = nullptr, *dst = nullptr;
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&src, bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&dst, bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemset(src, 1, bytes));
  const double ms = TimeMs(iters, nullptr, [&](int) {
    MOESERVE_BENCH_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, nullptr));
  });
  MOESERVE_BENCH_CHECK_CUDA(cudaFree(src));
  MOESERVE_BENCH_CHECK_CUDA(cudaFree(dst));
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

// TFLOP/s of an n³ bf16 GEMM with fp32 accumulation (cuBLAS).
inline double GemmCeilingTflops(int n, int iters) {
  cublasHandle_t h;
  MOESERVE_BENCH_CHECK_CUBLAS(cublasCreate(&h));
  const size_t bytes = size_t{1} * n * n * 2;
  void *a, *b, *c;
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&a, bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&b, bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&c, bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemset(a, 0x3c, bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemset(b, 0x3c, bytes));
  const float alpha = 1.0f, beta = 0.0f;
  const double ms = TimeMs(iters, nullptr, [&](int) {
    MOESERVE_BENCH_CHECK_CUBLAS(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n,
                                             b, CUDA_R_16BF, n, &beta, c, CUDA_R_16BF, n,
                                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  });
  MOESERVE_BENCH_CHECK_CUDA(cudaFree(a));
  MOESERVE_BENCH_CHECK_CUDA(cudaFree(b));
  MOESERVE_BENCH_CHECK_CUDA(cudaFree(c));
  MOESERVE_BENCH_CHECK_CUBLAS(cublasDestroy(h));
  return 2.0 * n * n * static_cast<double>(n) / (ms * 1e-3) / 1e12;
}

}  // namespace moeserve::bench

#endif  // MOESERVE_BENCH_CUDA_BENCH_CEILINGS_H_

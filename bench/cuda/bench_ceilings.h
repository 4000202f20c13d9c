#ifndef MOESERVE_BENCH_CUDA_BENCH_CEILINGS_H_
#define MOESERVE_BENCH_CUDA_BENCH_CEILINGS_H_

// The two ceilings every CUDA figure is reported against (GPU.md), measured in the caller's own
// process: a large device-to-device copy (bytes read + written per second; two source/destination
// pairs alternated, each far larger than L2) and an n³ bf16 cuBLAS GEMM with fp32 accumulation;
// plus event timing (warm-up, median). Header-only, shared by moeserve-gpu-ceilings and the
// bench/cuda binaries (link the moeserve_bench_ceilings interface target). Single-threaded use.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define MOESERVE_BENCH_CHECK_CUDA(expr)                                                          \
  do {                                                                                           \
    const cudaError_t _e = (expr);                                                               \
    if (_e != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(_e)); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

#define MOESERVE_BENCH_CHECK_CUBLAS(expr)                                                           \
  do {                                                                                              \
    const cublasStatus_t _s = (expr);                                                               \
    if (_s != CUBLAS_STATUS_SUCCESS) {                                                              \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cublasGetStatusString(_s)); \
      std::exit(1);                                                                                 \
    }                                                                                               \
  } while (0)

namespace moeserve::bench {

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// True when a CUDA device can be used; benchmarks print "SKIP: no CUDA device" and exit 77 if not.
inline bool HasCudaDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
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

inline double CopyGbps(size_t bytes, double ms) { return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9; }
inline double GemmTflops(int n, double ms) { return 2.0 * n * n * static_cast<double>(n) / (ms * 1e-3) / 1e12; }

// Median milliseconds of a `bytes` device-to-device copy, alternating two source/destination
// pairs (4 × bytes of device memory while it runs).
inline double CopyMs(size_t bytes, int iters, cudaStream_t stream = nullptr) {
  void* buf[4];
  for (void*& p : buf) {
    MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&p, bytes));
    MOESERVE_BENCH_CHECK_CUDA(cudaMemsetAsync(p, 1, bytes, stream));
  }
  const double ms = TimeMs(iters, stream, [&](int i) {
    MOESERVE_BENCH_CHECK_CUDA(
        cudaMemcpyAsync(buf[2 * (i & 1) + 1], buf[2 * (i & 1)], bytes, cudaMemcpyDeviceToDevice, stream));
  });
  for (void* p : buf) MOESERVE_BENCH_CHECK_CUDA(cudaFree(p));
  return ms;
}

// Median milliseconds of an n³ bf16 GEMM (bf16 out, fp32 accumulation, cuBLAS) on `stream`.
inline double GemmMs(int n, int iters, cudaStream_t stream = nullptr) {
  cublasHandle_t h;
  MOESERVE_BENCH_CHECK_CUBLAS(cublasCreate(&h));
  MOESERVE_BENCH_CHECK_CUBLAS(cublasSetStream(h, stream));
  const size_t bytes = size_t{1} * n * n * 2;
  void *a, *b, *c;
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&a, bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&b, bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&c, bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemsetAsync(a, 0x3c, bytes, stream));  // small finite bf16 values
  MOESERVE_BENCH_CHECK_CUDA(cudaMemsetAsync(b, 0x3c, bytes, stream));
  const float alpha = 1.0f, beta = 0.0f;
  const double ms = TimeMs(iters, stream, [&](int) {
    MOESERVE_BENCH_CHECK_CUBLAS(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b,
                                             CUDA_R_16BF, n, &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                             CUBLAS_GEMM_DEFAULT));
  });
  MOESERVE_BENCH_CHECK_CUDA(cudaFree(a));
  MOESERVE_BENCH_CHECK_CUDA(cudaFree(b));
  MOESERVE_BENCH_CHECK_CUDA(cudaFree(c));
  MOESERVE_BENCH_CHECK_CUBLAS(cublasDestroy(h));
  return ms;
}

// Read + write GB/s of a `bytes` (default 1 GiB) device-to-device copy.
inline double CopyCeilingGbps(int iters, size_t bytes = size_t{1} << 30, cudaStream_t stream = nullptr) {
  return CopyGbps(bytes, CopyMs(bytes, iters, stream));
}

// TFLOP/s of an n³ bf16 GEMM with fp32 accumulation (cuBLAS).
inline double GemmCeilingTflops(int n, int iters, cudaStream_t stream = nullptr) {
  return GemmTflops(n, GemmMs(n, iters, stream));
}

}  // namespace moeserve::bench

#endif  // MOESERVE_BENCH_CUDA_BENCH_CEILINGS_H_

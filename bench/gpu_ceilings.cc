// moeserve-gpu-ceilings: the two ceilings every CUDA figure is reported against (docs/GPU.md):
// device-to-device copy bandwidth (bytes read + written per second) and bf16 cuBLAS GEMM
// throughput. CUDA events after warm-up, median of the timed runs; the copy rotates over buffers
// far larger than L2. Prints `copy_gbps=...` and `gemm_tflops=...` lines for scripts.
//
//   moeserve-gpu-ceilings [--copy-mib 1024] [--gemm 8192] [--runs 20]

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

#define CHECK_CUDA(expr)                                                                            \
  do {                                                                                              \
    const cudaError_t e_ = (expr);                                                                  \
    if (e_ != cudaSuccess) {                                                                        \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_));    \
      std::exit(1);                                                                                 \
    }                                                                                               \
  } while (0)
#define CHECK_CUBLAS(expr)                                                                          \
  do {                                                                                              \
    const cublasStatus_t s_ = (expr);                                                               \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                              \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cublasGetStatusString(s_)); \
      std::exit(1);                                                                                 \
    }                                                                                               \
  } while (0)

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median milliseconds of `runs` timed calls of f(i) after 3 warm-up calls.
template <typename F>
double TimeMs(cudaStream_t stream, int runs, F f) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) f(i);
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    CHECK_CUDA(cudaEventRecord(a, stream));
    f(i);
    CHECK_CUDA(cudaEventRecord(b, stream));
    CHECK_CUDA(cudaEventSynchronize(b));
    float t = 0;
    CHECK_CUDA(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CHECK_CUDA(cudaEventDestroy(a));
  CHECK_CUDA(cudaEventDestroy(b));
  return Median(ms);
}

}  // namespace

int main(int argc, char** argv) {
  size_t copy_mib = 1024;
  int gemm = 8192, runs = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--copy-mib") == 0) copy_mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--gemm") == 0) gemm = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--runs") == 0) runs = std::atoi(argv[i + 1]);
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("SKIP: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MiB, %.1f GiB\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20, prop.totalGlobalMem / double(1 << 30));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));

  // Copy: two pairs of buffers, alternated, each copy_mib MiB (>> 50 MiB L2).
  const size_t bytes = copy_mib << 20;
  void* buf[4];
  for (void*& p : buf) {
    CHECK_CUDA(cudaMalloc(&p, bytes));
    CHECK_CUDA(cudaMemsetAsync(p, 1, bytes, stream));
  }
  const double copy_ms = TimeMs(stream, runs, [&](int i) {
    CHECK_CUDA(cudaMemcpyAsync(buf[2 * (i & 1) + 1], buf[2 * (i & 1)], bytes, cudaMemcpyDeviceToDevice, stream));
  });
  const double copy_gbps = 2.0 * bytes / (copy_ms * 1e-3) / 1e9;
  std::printf("copy: %zu MiB d2d, median %.3f ms -> %.1f GB/s (read + write)\n", copy_mib, copy_ms, copy_gbps);
  for (void* p : buf) CHECK_CUDA(cudaFree(p));

  // GEMM: bf16 in, fp32 accumulate, bf16 out, n x n x n.
  const size_t n = gemm;
  void *a, *b, *c;
  CHECK_CUDA(cudaMalloc(&a, n * n * 2));
  CHECK_CUDA(cudaMalloc(&b, n * n * 2));
  CHECK_CUDA(cudaMalloc(&c, n * n * 2));
  CHECK_CUDA(cudaMemsetAsync(a, 0x3c, n * n * 2, stream));  // small finite bf16 values
  CHECK_CUDA(cudaMemsetAsync(b, 0x3c, n * n * 2, stream));
  cublasHandle_t h;
  CHECK_CUBLAS(cublasCreate(&h));
  CHECK_CUBLAS(cublasSetStream(h, stream));
  const float alpha = 1.0f, beta = 0.0f;
  const double gemm_ms = TimeMs(stream, runs, [&](int) {
    CHECK_CUBLAS(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, gemm, gemm, gemm, &alpha, a, CUDA_R_16BF, gemm, b,
                              CUDA_R_16BF, gemm, &beta, c, CUDA_R_16BF, gemm, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
  });
  const double tflops = 2.0 * n * n * n / (gemm_ms * 1e-3) / 1e12;
  std::printf("gemm: bf16 %d^3, median %.3f ms -> %.1f TFLOP/s\n", gemm, gemm_ms, tflops);
  std::printf("copy_gbps=%.1f\ngemm_tflops=%.1f\n", copy_gbps, tflops);
  CHECK_CUBLAS(cublasDestroy(h));
  CHECK_CUDA(cudaFree(a));
  CHECK_CUDA(cudaFree(b));
  CHECK_CUDA(cudaFree(c));
  CHECK_CUDA(cudaStreamDestroy(stream));
  return 0;
}

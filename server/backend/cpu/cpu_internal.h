#ifndef MOESERVE_SERVER_BACKEND_CPU_CPU_INTERNAL_H_
#define MOESERVE_SERVER_BACKEND_CPU_CPU_INTERNAL_H_

// Helpers shared by the CPU backend's op files: operand validation and the GEMM kernel.
// Not part of the backend's interface.

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/backend/cpu/cpu_kernels.h"
#include "server/backend/op_checks.h"
#include "server/backend/tensor.h"
#include "server/common/thread_pool.h"

namespace moeserve::cpu {

// Shared operand validation (server/backend/op_checks.h), under the names the op files use.
using ::moeserve::Dim;
using ::moeserve::DTypeStr;
using ::moeserve::Expect;
using ::moeserve::OpError;

// out[t, n] = Σ_k x[t, k] · w[n, k] (+ bias[n]) for t < T, n < N, k < K, with row strides ldx,
// ldw, ldo (in elements); w holds elements of type `wt`. Parallel over `pool` when the product is
// large enough. bias may be null. Runs the kernel level Kernels() picks (cpu_kernels.h): with bf16
// weights and !exact, its bf16 dot-product GEMM where it has one (x rounded to bf16).
void GemmXWt(ThreadPool* pool, int64_t T, int64_t N, int64_t K, const float* x, int64_t ldx, WeightType wt,
             const void* w, int64_t ldw, const float* bias, float* out, int64_t ldo, bool exact);

// The GEMM weight type of a weight tensor's dtype (f32 for anything but bf16 / f16).
WeightType WeightTypeOf(DType dtype);

// Expect() for a weight operand: f32, bf16 or f16 (the CPU backend keeps 16-bit weights as stored).
absl::Status ExpectWeight(absl::string_view op, absl::string_view name, const Tensor& w,
                          std::initializer_list<Dim> dims);

// Grain for ParallelFor over rows of `row_cost` floats of work: aims at ≥ 16k floats per chunk so
// tiny ops run inline.
inline int64_t RowGrain(int64_t row_cost) {
  const int64_t kTarget = 16384;
  return row_cost <= 0 ? 1 : (kTarget + row_cost - 1) / row_cost;
}

// Σ a[i]·b[i] with eight independent partial sums, so that it vectorises without -ffast-math.
inline float Dot(const float* a, const float* b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  }
  float r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

// Rotates the first 2·half values of one head `v` in place with cosines c[0, half) and sines
// s[0, half): pairs (i, i + half) when neox, else (2i, 2i + 1).
inline void RotateHead(float* v, const float* c, const float* s, int64_t half, bool neox) {
  const int64_t stride = neox ? 1 : 2, other = neox ? half : 1;
  for (int64_t i = 0; i < half; ++i) {
    float* a = v + i * stride;
    const float x1 = a[0], x2 = a[other];
    a[0] = x1 * c[i] - x2 * s[i];
    a[other] = x2 * c[i] + x1 * s[i];
  }
}

}  // namespace moeserve::cpu

#endif  // MOESERVE_SERVER_BACKEND_CPU_CPU_INTERNAL_H_

#ifndef MOESERVE_SERVER_BACKEND_CPU_CPU_KERNELS_H_
#define MOESERVE_SERVER_BACKEND_CPU_CPU_KERNELS_H_

// The CPU backend's inner loops, compiled once per instruction-set level and picked at run time
// from the CPU's features, so that one binary runs on any x86-64 and uses AVX2/FMA/F16C, AVX-512
// and AVX512_BF16 where present. The same source (cpu_kernels_impl.h, GCC vector extensions) is
// compiled for each level by cpu_kernels_<level>.cc with that level's -m flags; the baseline level
// is the scalar-equivalent reference every other level is tested against (cpu_kernels_test).
//
// Kernels work on raw pointers over one tile or row and never allocate; threading and operand
// validation stay with the ops (cpu_gemm.cc, cpu_attention.cc, ...). Stateless: safe for
// concurrent use.

#include <cstdint>
#include <string_view>
#include <vector>

namespace moeserve::cpu {

// Storage of a GEMM weight: fp32, or 16-bit floats widened to fp32 inside the micro-kernel.
enum class WeightType : uint8_t { kF32 = 0, kBF16 = 1, kF16 = 2 };
inline constexpr int kNumWeightTypes = 3;

// out[t, n] (=|+=) Σ_k x[t, k] · w[n, k] (+ bias[n]) over rows [t0, t1) × columns [n0, n1) of the
// product, k over [0, K). `w` points at elements of the WeightType the kernel was picked for.
struct GemmArgs {
  int64_t T, N, K;
  const float* x;
  int64_t ldx;
  const void* w;
  int64_t ldw;        // in elements
  const float* bias;  // may be null
  float* out;
  int64_t ldo;
};
using GemmTileFn = void (*)(const GemmArgs& a, int64_t t0, int64_t t1, int64_t n0, int64_t n1);

// The online-softmax state of one attention query.
struct SoftmaxState {
  float max;  // running max of the scaled scores (-inf before the first key)
  float sum;  // Σ exp(score - max)
};

// G queries that read the same keys (the heads of a GQA group, or MLA heads over the shared latent
// rows). Query g is qa + g·q_stride (da values, against a key row's first da values) and, when db > 0,
// qb + g·qb_stride (db values, against the key row's next db values); its output accumulator is
// acc + g·dv.
struct AttendArgs {
  const float* qa;
  const float* qb;
  int64_t q_stride, qb_stride;
  int64_t da, db, dv;
  int64_t num_queries;  // G
  float scale;
};
// Folds n keys (row j at k + j·k_stride, its value row at v + j·v_stride) into the G queries'
// online softmax: per query, scores = scale · q·k, then state and accumulator are rescaled once to
// the new max and acc += Σ_j exp(score_j - max) · v_j. scores: scratch of G·n floats.
using AttendBlockFn = void (*)(const AttendArgs& a, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                               int64_t n, float* scores, SoftmaxState* state, float* acc);

struct CpuKernels {
  std::string_view name;  // "baseline", "avx2", "avx512", "avx512_bf16"
  GemmTileFn gemm[kNumWeightTypes];

  // dst[i] = widen(src[i]) for n values of a 16-bit float type (kBF16 or kF16).
  void (*widen_row)(WeightType type, const void* src, float* dst, int64_t n);
  // out = x / rms(x) * w over d values (x and out may alias); rms accumulated in double.
  void (*rms_norm_row)(const float* x, const float* w, float eps, int64_t d, float* out);
  // r += x; out = r / rms(r) * w (out may alias x, not r).
  void (*add_rms_norm_row)(float* r, const float* x, const float* w, float eps, int64_t d, float* out);
  // out[i] = silu(g[i]) * u[i].
  void (*silu_mul_row)(const float* g, const float* u, int64_t n, float* out);
  // y[i] += a * x[i].
  void (*axpy_row)(float a, const float* x, int64_t n, float* y);
  // Σ a[i]·b[i].
  float (*dot)(const float* a, const float* b, int64_t n);
  // p[i] = exp(p[i] - m) in place; returns Σ p[i]. exp as expf within 2 ulp, 0 for -inf.
  float (*exp_sub_sum)(float* p, float m, int64_t n);
  AttendBlockFn attend_block;
  // For bf16 weights (GemmArgs::w as stored): out[t, n] (=|+=) Σ_k bf16(x[t, k]) · w[n, k] (+ bias[n]),
  // the activations rounded to bf16 (nearest even) and the exact products summed in fp32 by the
  // CPU's bf16 dot-product instruction (bf16 subnormals read as zero). Null at the levels without one.
  GemmTileFn gemm_bf16_dot;
};

// The kernels of every compiled level this CPU can run, baseline first, best last.
std::vector<const CpuKernels*> AvailableKernels();
// The best level for this CPU (or the one forced for testing).
const CpuKernels& Kernels();
// Tests: use `k` (one of AvailableKernels()) until reset with nullptr.
void ForceKernelsForTesting(const CpuKernels* k);

// The compiled levels (cpu_kernels_<level>.cc).
const CpuKernels& KernelsBaseline();
const CpuKernels& KernelsAvx2();
const CpuKernels& KernelsAvx512();
const CpuKernels& KernelsAvx512Bf16();  // avx512 plus the bf16 dot-product GEMM

}  // namespace moeserve::cpu

#endif  // MOESERVE_SERVER_BACKEND_CPU_CPU_KERNELS_H_

// Linear and HeadwiseLinear over the [out, in] (PyTorch) weight layout, with fp32 activations and
// fp32, bf16 or f16 weights (16-bit weights stay 16-bit in memory and are widened inside the
// micro-kernel: half the bytes per decode step). With bf16 weights on a CPU with AVX512_BF16, unless
// CpuBackendOptions::exact_gemm, the activations are rounded to bf16 and the products run on the
// bf16 dot-product instruction (CpuKernels::gemm_bf16_dot): 2-3x the widening kernel's speed from
// T = 16 on, and faster at T = 1 too (bench/cpu_bf16_gemm.sh; docs/PERF.md), so at every T.
//
// The product is cut into tiles of MB rows × NB columns run by the kernel level picked for this CPU
// (cpu_kernels.h; micro-kernel in cpu_kernels_impl.h). For decode (T small) that is effectively a
// split over output columns, for prefill a 2-D split over tiles.

#include <algorithm>
#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/cpu/cpu_internal.h"
#include "server/backend/cpu/cpu_kernels.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace cpu {
namespace {

constexpr int64_t kMb = 64;                // rows of x per tile
constexpr int64_t kNb = 48;                // rows of w (output columns) per tile
constexpr int64_t kMinTileMacs = 1 << 17;  // below this per chunk, waking threads costs more

}  // namespace

WeightType WeightTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kBF16: return WeightType::kBF16;
    case DType::kF16: return WeightType::kF16;
    default: return WeightType::kF32;
  }
}

absl::Status ExpectWeight(absl::string_view op, absl::string_view name, const Tensor& w,
                          std::initializer_list<Dim> dims) {
  const bool stored = w.defined() && (w.dtype() == DType::kBF16 || w.dtype() == DType::kF16);
  return Expect(op, name, w, stored ? w.dtype() : DType::kF32, dims);
}

void GemmXWt(ThreadPool* pool, int64_t T, int64_t N, int64_t K, const float* x, int64_t ldx, WeightType wt,
             const void* w, int64_t ldw, const float* bias, float* out, int64_t ldo, bool exact) {
  if (T <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) out[t * ldo + n] = bias != nullptr ? bias[n] : 0.0f;
    return;
  }
  const CpuKernels& kernels = Kernels();
  const bool dot = !exact && wt == WeightType::kBF16 && kernels.gemm_bf16_dot != nullptr;
  const GemmTileFn tile = dot ? kernels.gemm_bf16_dot : kernels.gemm[static_cast<int>(wt)];
  const GemmArgs a{T, N, K, x, ldx, w, ldw, bias, out, ldo};
  // Rows of a tile: keep single-row (decode) products on the 1-row kernel, and do not split few
  // rows across tiles (they would re-read the same weights).
  const int64_t mb = T <= kMb ? T : kMb;
  const int64_t tiles_m = (T + mb - 1) / mb;
  const int64_t tiles_n = (N + kNb - 1) / kNb;
  const int64_t tiles = tiles_m * tiles_n;
  const int64_t macs_per_tile = mb * std::min(N, kNb) * K;
  const int64_t grain = std::max<int64_t>(1, kMinTileMacs / std::max<int64_t>(1, macs_per_tile));
  auto run = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      // Column-major over tiles: consecutive chunks share weight columns, which are the larger
      // operand for the usual T < N.
      const int64_t tn = i / tiles_m, tm = i % tiles_m;
      const int64_t t0 = tm * mb, n0 = tn * kNb;
      tile(a, t0, std::min(T, t0 + mb), n0, std::min(N, n0 + kNb));
    }
  };
  if (pool == nullptr || tiles <= grain) {
    run(0, tiles);
  } else {
    pool->ParallelFor(tiles, grain, run);
  }
}

}  // namespace cpu

absl::Status CpuBackend::Linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) {
  constexpr absl::string_view kOp = "Linear";
  RETURN_IF_ERROR(cpu::Expect(kOp, "x", x, DType::kF32, {"T", "in"}));
  const int64_t T = x.dim(0), in = x.dim(1);
  RETURN_IF_ERROR(cpu::ExpectWeight(kOp, "w", w, {"out", in}));
  const int64_t n_out = w.dim(0);
  if (bias.defined()) RETURN_IF_ERROR(cpu::Expect(kOp, "bias", bias, DType::kF32, {n_out}));
  RETURN_IF_ERROR(cpu::Expect(kOp, "out", out, DType::kF32, {T, n_out}));
  cpu::GemmXWt(&pool_, T, n_out, in, x.data_as<float>(), in, cpu::WeightTypeOf(w.dtype()), w.data(), in,
               bias.defined() ? bias.data_as<float>() : nullptr, out.data_as<float>(), n_out, options_.exact_gemm);
  return absl::OkStatus();
}

absl::Status CpuBackend::HeadwiseLinear(const Tensor& x, const Tensor& w, const Tensor& out) {
  constexpr absl::string_view kOp = "HeadwiseLinear";
  RETURN_IF_ERROR(cpu::Expect(kOp, "x", x, DType::kF32, {"T", "H", "in"}));
  const int64_t T = x.dim(0), H = x.dim(1), in = x.dim(2);
  RETURN_IF_ERROR(cpu::ExpectWeight(kOp, "w", w, {H, "out", in}));
  const int64_t n_out = w.dim(1);
  RETURN_IF_ERROR(cpu::Expect(kOp, "out", out, DType::kF32, {T, H, n_out}));
  const float* xp = x.data_as<float>();
  const cpu::WeightType wt = cpu::WeightTypeOf(w.dtype());
  const char* wp = static_cast<const char*>(w.data());
  const int64_t head_bytes = n_out * in * static_cast<int64_t>(DTypeSize(w.dtype()));
  float* op = out.data_as<float>();
  if (T * n_out * in < (1 << 16)) {
    // Small per-head products (decode): parallelise over heads instead of inside each product.
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, T * n_out * in));
    pool_.ParallelFor(H, grain, [&](int64_t b, int64_t e) {
      for (int64_t h = b; h < e; ++h) {
        cpu::GemmXWt(nullptr, T, n_out, in, xp + h * in, H * in, wt, wp + h * head_bytes, in, nullptr, op + h * n_out,
                     H * n_out, options_.exact_gemm);
      }
    });
  } else {
    for (int64_t h = 0; h < H; ++h) {
      cpu::GemmXWt(&pool_, T, n_out, in, xp + h * in, H * in, wt, wp + h * head_bytes, in, nullptr, op + h * n_out,
                   H * n_out, options_.exact_gemm);
    }
  }
  return absl::OkStatus();
}

}  // namespace moeserve

// Linear and HeadwiseLinear: a blocked fp32 GEMM for the [out, in] (PyTorch) weight layout.
//
// out[t, n] = Σ_k x[t, k] · w[n, k] is a dot product of two contiguous rows, so the micro-kernel
// computes an MR × NR block of such dot products at once with 8-wide vector accumulators
// (GCC vector extensions): per 8 values of k it loads NR weight vectors and MR input vectors and
// does MR·NR multiply-adds, reusing every load several times. K is cut into KC-long slices so a
// micro-kernel's rows stay in L1 while the tile's rows stay in L2. The work is cut into tiles of
// MB rows × NB columns; for decode (T small) that is effectively a split over output columns, for
// prefill a 2-D split over tiles. The kernel is compiled twice, for the x86-64 baseline and for
// AVX2+FMA, and picked at run time.

#include <algorithm>
#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/cpu/cpu_internal.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace cpu {
namespace {

#define MS_INLINE inline __attribute__((always_inline))

// Every helper taking or returning v8f is force-inlined, so the ABI note GCC gives for 32-byte
// vectors in baseline code does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8f __attribute__((vector_size(32)));

constexpr int64_t kKc = 256;   // k slice
constexpr int64_t kMb = 64;    // rows of x per tile
constexpr int64_t kNb = 48;    // rows of w (output columns) per tile
constexpr int64_t kMinTileMacs = 1 << 17;  // below this per chunk, waking threads costs more

MS_INLINE v8f Load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

MS_INLINE float HSum(v8f v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

struct GemmArgs {
  int64_t T, N, K;
  const float* x;
  int64_t ldx;
  const float* w;
  int64_t ldw;
  const float* bias;
  float* out;
  int64_t ldo;
};

// Dot products of MR rows of x with NR rows of w over kl values; stores (first slice) or adds
// (later slices) into out, with the bias on the first slice.
template <int MR, int NR>
MS_INLINE void Micro(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t kl,
                     float* out, int64_t ldo, const float* bias, bool first) {
  v8f acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = v8f{};
  int64_t k = 0;
  for (; k + 8 <= kl; k += 8) {
    v8f wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = Load8(w + j * ldw + k);
    for (int i = 0; i < MR; ++i) {
      const v8f xv = Load8(x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] += xv * wv[j];
    }
  }
  float r[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) r[i][j] = HSum(acc[i][j]);
  for (; k < kl; ++k)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) r[i][j] += x[i * ldx + k] * w[j * ldw + k];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      float& o = out[i * ldo + j];
      if (first) {
        o = r[i][j] + (bias != nullptr ? bias[j] : 0.0f);
      } else {
        o += r[i][j];
      }
    }
  }
}

// Micro<MR, NR> for runtime mr <= MR, nr <= NR (the ragged edges of a tile).
template <int MR, int NR>
MS_INLINE void MicroEdge(int64_t mr, int64_t nr, const float* x, int64_t ldx, const float* w,
                         int64_t ldw, int64_t kl, float* out, int64_t ldo, const float* bias,
                         bool first) {
  if constexpr (MR > 1) {
    if (mr < MR) {
      MicroEdge<MR - 1, NR>(mr, nr, x, ldx, w, ldw, kl, out, ldo, bias, first);
      return;
    }
  }
  if constexpr (NR > 1) {
    if (nr < NR) {
      MicroEdge<MR, NR - 1>(mr, nr, x, ldx, w, ldw, kl, out, ldo, bias, first);
      return;
    }
  }
  Micro<MR, NR>(x, ldx, w, ldw, kl, out, ldo, bias, first);
}

// Rows [t0, t1) × columns [n0, n1) of the product.
template <int MR, int NR>
MS_INLINE void TileImpl(const GemmArgs& a, int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
  for (int64_t kc = 0; kc < a.K; kc += kKc) {
    const int64_t kl = std::min(kKc, a.K - kc);
    const bool first = kc == 0;
    for (int64_t n = n0; n < n1; n += NR) {
      const int64_t nr = std::min<int64_t>(NR, n1 - n);
      const float* wp = a.w + n * a.ldw + kc;
      const float* bp = a.bias != nullptr ? a.bias + n : nullptr;
      for (int64_t t = t0; t < t1; t += MR) {
        const int64_t mr = std::min<int64_t>(MR, t1 - t);
        const float* xp = a.x + t * a.ldx + kc;
        float* op = a.out + t * a.ldo + n;
        if (mr == MR && nr == NR) {
          Micro<MR, NR>(xp, a.ldx, wp, a.ldw, kl, op, a.ldo, bp, first);
        } else {
          MicroEdge<MR, NR>(mr, nr, xp, a.ldx, wp, a.ldw, kl, op, a.ldo, bp, first);
        }
      }
    }
  }
}

MS_INLINE void TileDispatch(const GemmArgs& a, int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
  if (t1 - t0 == 1) {
    TileImpl<1, 8>(a, t0, t1, n0, n1);  // decode: one input row, many independent columns
  } else {
    TileImpl<4, 3>(a, t0, t1, n0, n1);  // 12 accumulators + 3 weight vectors + 1 input vector
  }
}

__attribute__((target("avx2,fma"))) void TileAvx2(const GemmArgs& a, int64_t t0, int64_t t1,
                                                  int64_t n0, int64_t n1) {
  TileDispatch(a, t0, t1, n0, n1);
}

void TileBaseline(const GemmArgs& a, int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
  TileDispatch(a, t0, t1, n0, n1);
}

using TileFn = void (*)(const GemmArgs&, int64_t, int64_t, int64_t, int64_t);

std::atomic<bool> force_baseline{false};

TileFn PickTile() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &TileAvx2;
  return &TileBaseline;
}

}  // namespace

void GemmXWt(ThreadPool* pool, int64_t T, int64_t N, int64_t K, const float* x, int64_t ldx,
             const float* w, int64_t ldw, const float* bias, float* out, int64_t ldo) {
  if (T <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) out[t * ldo + n] = bias != nullptr ? bias[n] : 0.0f;
    return;
  }
  static const TileFn best = PickTile();
  const TileFn tile = force_baseline.load(std::memory_order_relaxed) ? &TileBaseline : best;
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

void ForceBaselineGemmForTesting(bool on) { force_baseline.store(on); }

}  // namespace cpu

absl::Status CpuBackend::Linear(const Tensor& x, const Tensor& w, const Tensor& bias,
                                const Tensor& out) {
  constexpr absl::string_view kOp = "Linear";
  RETURN_IF_ERROR(cpu::Expect(kOp, "x", x, DType::kF32, {"T", "in"}));
  const int64_t T = x.dim(0), in = x.dim(1);
  RETURN_IF_ERROR(cpu::Expect(kOp, "w", w, DType::kF32, {"out", in}));
  const int64_t n_out = w.dim(0);
  if (bias.defined()) RETURN_IF_ERROR(cpu::Expect(kOp, "bias", bias, DType::kF32, {n_out}));
  RETURN_IF_ERROR(cpu::Expect(kOp, "out", out, DType::kF32, {T, n_out}));
  cpu::GemmXWt(&pool_, T, n_out, in, x.data_as<float>(), in, w.data_as<float>(), in,
               bias.defined() ? bias.data_as<float>() : nullptr, out.data_as<float>(), n_out);
  return absl::OkStatus();
}

absl::Status CpuBackend::HeadwiseLinear(const Tensor& x, const Tensor& w, const Tensor& out) {
  constexpr absl::string_view kOp = "HeadwiseLinear";
  RETURN_IF_ERROR(cpu::Expect(kOp, "x", x, DType::kF32, {"T", "H", "in"}));
  const int64_t T = x.dim(0), H = x.dim(1), in = x.dim(2);
  RETURN_IF_ERROR(cpu::Expect(kOp, "w", w, DType::kF32, {H, "out", in}));
  const int64_t n_out = w.dim(1);
  RETURN_IF_ERROR(cpu::Expect(kOp, "out", out, DType::kF32, {T, H, n_out}));
  const float* xp = x.data_as<float>();
  const float* wp = w.data_as<float>();
  float* op = out.data_as<float>();
  if (T * n_out * in < (1 << 16)) {
    // Small per-head products (decode): parallelise over heads instead of inside each product.
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, T * n_out * in));
    pool_.ParallelFor(H, grain, [&](int64_t b, int64_t e) {
      for (int64_t h = b; h < e; ++h) {
        cpu::GemmXWt(nullptr, T, n_out, in, xp + h * in, H * in, wp + h * n_out * in, in, nullptr,
                     op + h * n_out, H * n_out);
      }
    });
  } else {
    for (int64_t h = 0; h < H; ++h) {
      cpu::GemmXWt(&pool_, T, n_out, in, xp + h * in, H * in, wp + h * n_out * in, in, nullptr,
                   op + h * n_out, H * n_out);
    }
  }
  return absl::OkStatus();
}

}  // namespace moeserve

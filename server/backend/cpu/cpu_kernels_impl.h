// The CPU kernels' source, compiled once per instruction-set level: included only by
// cpu_kernels_<level>.cc, inside that level's namespace, after defining MS_KERNEL_WIDTH (floats per
// vector: 8 for the baseline and AVX2 builds, 16 for AVX-512) and MS_KERNEL_NAME. The code is
// written with GCC vector extensions, so each build gets that level's instructions (the baseline
// build splits 32-byte vectors into SSE2 pairs). No intrinsics: nothing here can fault on a CPU
// that runs the level it was compiled for. The one exception is the bf16 dot-product GEMM
// (cpu_kernels_bf16_dot.h), built only into the avx512_bf16 level.
//
// GEMM (out = x · wᵀ, w [N, K] row-major as PyTorch stores it): out[t, n] is the dot product of
// two contiguous rows, so the micro-kernel keeps an MR × NR block of vector accumulators over K
// (lanes hold partial sums over k) and reduces each to a float at the end of a K slice. Per
// vector step it loads NR weight vectors (16-bit weights are widened to fp32 in registers: bf16 by
// a shift, f16 by exponent rebias) and MR input vectors, and does MR·NR fused multiply-adds.
// K is cut into kKc-long slices so that the micro-kernel's rows stay in L1 (MR·4 + NR·2..4 bytes
// per k) and a slice's reduction costs little against its kKc / W steps. Decode (one input row)
// uses MR = 1, NR = 8: eight independent weight streams, each byte read once.

// The including file has already included <cmath>, <cstdint>, <cstring>, <type_traits> and
// <utility> (outside the namespace).

#pragma GCC diagnostic ignored "-Wpsabi"
#define MS_INLINE inline __attribute__((always_inline))

constexpr int kW = MS_KERNEL_WIDTH;
typedef float vf __attribute__((vector_size(kW * 4)));
typedef int32_t vi __attribute__((vector_size(kW * 4)));
typedef uint32_t vu __attribute__((vector_size(kW * 4)));
typedef uint16_t vh __attribute__((vector_size(kW * 2)));

constexpr int64_t kKc = 1024;
// Prefill micro-tile: MR × NR accumulators + NR weight vectors + 1 input vector fit the register
// file (16 vector registers with AVX2, 32 with AVX-512).
constexpr int kMr = 4;
constexpr int kNr = kW == 16 ? 6 : 3;

MS_INLINE vf LoadF(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
MS_INLINE void StoreF(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
MS_INLINE vf Splat(float a) { return vf{} + a; }

MS_INLINE float HSum(vf v) {
  float s[kW];
  std::memcpy(s, &v, sizeof s);
  // Pairwise, so the result does not depend on the order a compiler picks.
  for (int w = kW / 2; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) s[i] += s[i + w];
  return s[0];
}
MS_INLINE float HMax(vf v) {
  float s[kW];
  std::memcpy(s, &v, sizeof s);
  float m = s[0];
  for (int i = 1; i < kW; ++i) m = s[i] > m ? s[i] : m;
  return m;
}

MS_INLINE vf Bf16ToF(vh h) { return (vf)(__builtin_convertvector(h, vu) << 16); }
// Exact IEEE half -> single: normals and subnormals by rescaling the shifted bits by 2^112,
// infinities and NaNs by forcing the exponent.
MS_INLINE vf F16ToF(vh h) {
  const vu u = __builtin_convertvector(h, vu);
  const vu em = u & 0x7fffu;
  vu bits = (vu)((vf)(em << 13) * 0x1p112f);
  bits = em >= 0x7c00u ? (bits | 0x7f800000u) : bits;
  return (vf)(bits | ((u & 0x8000u) << 16));
}
MS_INLINE float Bf16ToF1(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
MS_INLINE float F16ToF1(uint16_t h) {
  const uint32_t em = h & 0x7fffu;
  float f = 0;
  uint32_t shifted = em << 13;
  std::memcpy(&f, &shifted, 4);
  f *= 0x1p112f;
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (em >= 0x7c00u) bits |= 0x7f800000u;
  bits |= static_cast<uint32_t>(h & 0x8000u) << 16;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <WeightType WT>
using WElem = std::conditional_t<WT == WeightType::kF32, float, uint16_t>;

template <WeightType WT>
MS_INLINE vf LoadW(const WElem<WT>* p) {
  if constexpr (WT == WeightType::kF32) {
    return LoadF(p);
  } else {
    vh h;
    std::memcpy(&h, p, sizeof h);
    if constexpr (WT == WeightType::kBF16) return Bf16ToF(h);
    return F16ToF(h);
  }
}
template <WeightType WT>
MS_INLINE float LoadW1(const WElem<WT>* p) {
  if constexpr (WT == WeightType::kF32) return *p;
  if constexpr (WT == WeightType::kBF16) return Bf16ToF1(*p);
  return F16ToF1(*p);
}

// exp(x) for a vector: x = n·ln2 + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial (Cephes'
// expf coefficients), 2^n through the exponent bits. Inputs below -87.3 give 0 (so -inf gives 0),
// above 88.7 are clamped (results near FLT_MAX; callers only pass x <= 0 or SiLU's bounded range).
MS_INLINE vf Exp(vf x) {
  const vf hi = Splat(88.7f), lo = Splat(-87.3f);
  const vi tiny = x < lo;
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  vf n = x * 1.44269504088896341f;
  n = __builtin_convertvector(__builtin_convertvector(n + (vf)(n >= 0 ? Splat(0.5f) : Splat(-0.5f)), vi), vf);
  vf r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vf p = Splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const vi e = (__builtin_convertvector(n, vi) + 127) << 23;
  vf y = p * (vf)e;
  return tiny ? Splat(0.0f) : y;
}
MS_INLINE float Exp1(float x) {
  vf v = Splat(x);
  return Exp(v)[0];
}

// ---- GEMM ----------------------------------------------------------------------------------------

// Stores the MR × NR sums r into out (first K slice, plus bias) or adds them (later slices).
template <int MR, int NR>
MS_INLINE void StoreSums(const float (&r)[MR][NR], float* out, int64_t ldo, const float* bias, bool first) {
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

// Dot products of MR rows of x with NR rows of w over kl values: stores (first slice, with bias)
// or adds (later slices) into out.
template <int MR, int NR, WeightType WT>
MS_INLINE void Micro(const float* x, int64_t ldx, const WElem<WT>* w, int64_t ldw, int64_t kl, float* out, int64_t ldo,
                     const float* bias, bool first) {
  vf acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = vf{};
  int64_t k = 0;
  for (; k + kW <= kl; k += kW) {
    vf wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = LoadW<WT>(w + j * ldw + k);
    for (int i = 0; i < MR; ++i) {
      const vf xv = LoadF(x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] += xv * wv[j];
    }
  }
  float r[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) r[i][j] = HSum(acc[i][j]);
  for (; k < kl; ++k)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) r[i][j] += x[i * ldx + k] * LoadW1<WT>(w + j * ldw + k);
  StoreSums<MR, NR>(r, out, ldo, bias, first);
}

// The bf16 pair kernel (below).
template <int MR, int NR>
MS_INLINE void MicroPairs(const float* xp, int64_t ldp, const uint16_t* w, int64_t ldw, int64_t kl, float* out,
                          int64_t ldo, const float* bias, bool first);

// Micro<MR, NR> (or MicroPairs<MR, NR> when PAIRS) for run-time mr <= MR, nr <= NR (the ragged
// edges of a tile).
template <int MR, int NR, WeightType WT, bool PAIRS = false>
MS_INLINE void MicroEdge(int64_t mr, int64_t nr, const float* x, int64_t ldx, const WElem<WT>* w, int64_t ldw,
                         int64_t kl, float* out, int64_t ldo, const float* bias, bool first) {
  if constexpr (MR > 1) {
    if (mr < MR) {
      MicroEdge<MR - 1, NR, WT, PAIRS>(mr, nr, x, ldx, w, ldw, kl, out, ldo, bias, first);
      return;
    }
  }
  if constexpr (NR > 1) {
    if (nr < NR) {
      MicroEdge<MR, NR - 1, WT, PAIRS>(mr, nr, x, ldx, w, ldw, kl, out, ldo, bias, first);
      return;
    }
  }
  if constexpr (PAIRS) {
    MicroPairs<MR, NR>(x, ldx, w, ldw, kl, out, ldo, bias, first);
  } else {
    Micro<MR, NR, WT>(x, ldx, w, ldw, kl, out, ldo, bias, first);
  }
}

template <int MR, int NR, WeightType WT>
MS_INLINE void TileImpl(const GemmArgs& a, int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
  const WElem<WT>* w = static_cast<const WElem<WT>*>(a.w);
  for (int64_t kc = 0; kc < a.K; kc += kKc) {
    const int64_t kl = a.K - kc < kKc ? a.K - kc : kKc;
    const bool first = kc == 0;
    for (int64_t n = n0; n < n1; n += NR) {
      const int64_t nr = n1 - n < NR ? n1 - n : NR;
      const WElem<WT>* wp = w + n * a.ldw + kc;
      const float* bp = a.bias != nullptr ? a.bias + n : nullptr;
      for (int64_t t = t0; t < t1; t += MR) {
        const int64_t mr = t1 - t < MR ? t1 - t : MR;
        const float* xp = a.x + t * a.ldx + kc;
        float* op = a.out + t * a.ldo + n;
        if (mr == MR && nr == NR) {
          Micro<MR, NR, WT>(xp, a.ldx, wp, a.ldw, kl, op, a.ldo, bp, first);
        } else {
          MicroEdge<MR, NR, WT>(mr, nr, xp, a.ldx, wp, a.ldw, kl, op, a.ldo, bp, first);
        }
      }
    }
  }
}

// ---- bf16 GEMM over pairs -----------------------------------------------------------------------
//
// A bf16 weight row read as 32-bit lanes holds two weights per lane: the even-indexed one in the
// low half, the odd-indexed one in the high half. As fp32, the odd one is the lane with its low
// half cleared (an and) and the even one is the lane shifted left by 16: one op per W weights,
// where widening (zero-extend, then shift) takes two or three. The input rows are permuted to
// match, per block of 2W values: the W even-indexed values, then the W odd-indexed ones
// (PackPairs). The products and their fp32 sums are the same as the widening kernel's, only summed
// in another order. The last K % 2W values stay in order and are done one by one.

constexpr int kPair = 2 * kW;  // values per block

// dst[0, kl) = the permuted src[0, kl) (see above).
MS_INLINE void PackPairs(const float* src, int64_t kl, float* dst) {
  int64_t k = 0;
  for (; k + kPair <= kl; k += kPair) {
    for (int i = 0; i < kW; ++i) {
      dst[k + i] = src[k + 2 * i];
      dst[k + kW + i] = src[k + 2 * i + 1];
    }
  }
  for (; k < kl; ++k) dst[k] = src[k];
}

MS_INLINE vf Bf16Even(vu u) { return (vf)(u << 16); }
MS_INLINE vf Bf16Odd(vu u) { return (vf)(u & 0xffff0000u); }
MS_INLINE vu LoadPairs(const uint16_t* p) {
  vu u;
  std::memcpy(&u, p, sizeof u);
  return u;
}

// Micro<MR, NR, kBF16> over packed input rows xp (row stride ldp): the even weights of NR rows
// against MR rows' even values, then the odd ones (NR converted weight vectors live at a time).
template <int MR, int NR>
MS_INLINE void MicroPairs(const float* xp, int64_t ldp, const uint16_t* w, int64_t ldw, int64_t kl, float* out,
                          int64_t ldo, const float* bias, bool first) {
  vf acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = vf{};
  int64_t k = 0;
  for (; k + kPair <= kl; k += kPair) {
    vf wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = Bf16Even(LoadPairs(w + j * ldw + k));
    for (int i = 0; i < MR; ++i) {
      const vf xv = LoadF(xp + i * ldp + k);
      for (int j = 0; j < NR; ++j) acc[i][j] += xv * wv[j];
    }
    for (int j = 0; j < NR; ++j) wv[j] = Bf16Odd(LoadPairs(w + j * ldw + k));
    for (int i = 0; i < MR; ++i) {
      const vf xv = LoadF(xp + i * ldp + k + kW);
      for (int j = 0; j < NR; ++j) acc[i][j] += xv * wv[j];
    }
  }
  float r[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) r[i][j] = HSum(acc[i][j]);
  for (; k < kl; ++k)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) r[i][j] += xp[i * ldp + k] * Bf16ToF1(w[j * ldw + k]);
  StoreSums<MR, NR>(r, out, ldo, bias, first);
}

// TileImpl for bf16 weights: per K slice and MR input rows, packs the rows (on the stack, kept in
// L1) and runs them against every NR-column block of the tile.
template <int MR, int NR>
MS_INLINE void TilePairs(const GemmArgs& a, int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
  const uint16_t* w = static_cast<const uint16_t*>(a.w);
  alignas(64) float packed[MR * kKc];
  for (int64_t kc = 0; kc < a.K; kc += kKc) {
    const int64_t kl = a.K - kc < kKc ? a.K - kc : kKc;
    const bool first = kc == 0;
    for (int64_t t = t0; t < t1; t += MR) {
      const int64_t mr = t1 - t < MR ? t1 - t : MR;
      for (int64_t i = 0; i < mr; ++i) PackPairs(a.x + (t + i) * a.ldx + kc, kl, packed + i * kKc);
      float* orow = a.out + t * a.ldo;
      for (int64_t n = n0; n < n1; n += NR) {
        const int64_t nr = n1 - n < NR ? n1 - n : NR;
        const uint16_t* wp = w + n * a.ldw + kc;
        const float* bp = a.bias != nullptr ? a.bias + n : nullptr;
        if (mr == MR && nr == NR) {
          MicroPairs<MR, NR>(packed, kKc, wp, a.ldw, kl, orow + n, a.ldo, bp, first);
        } else {
          MicroEdge<MR, NR, WeightType::kBF16, true>(mr, nr, packed, kKc, wp, a.ldw, kl, orow + n, a.ldo, bp, first);
        }
      }
    }
  }
}

// The pair kernel is used for single-row products (decode: 15-20% more weights per second than
// widening, AVX-512, cache-resident). With several rows the conversions are shared by MR rows and the
// widening kernel was as fast or faster (its MR·NR accumulators leave no registers for the pair
// kernel's second half; measured 4x6, 4x5, 4x4, 6x4, 8x3, 3x8, 2x8).
template <WeightType WT>
void GemmTile(const GemmArgs& a, int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
  if (WT == WeightType::kBF16 && t1 - t0 == 1) {
    TilePairs<1, 8>(a, t0, t1, n0, n1);
  } else if (t1 - t0 == 1) {
    TileImpl<1, 8, WT>(a, t0, t1, n0, n1);  // decode: one input row, many weight streams
  } else {
    TileImpl<kMr, kNr, WT>(a, t0, t1, n0, n1);
  }
}

#ifdef MS_KERNEL_BF16_DOT
#include "server/backend/cpu/cpu_kernels_bf16_dot.h"
#endif

// ---- Row kernels ---------------------------------------------------------------------------------

void WidenRow(WeightType type, const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (type == WeightType::kBF16) {
    for (; i + kW <= n; i += kW) StoreF(dst + i, LoadW<WeightType::kBF16>(s + i));
    for (; i < n; ++i) dst[i] = Bf16ToF1(s[i]);
  } else if (type == WeightType::kF16) {
    for (; i + kW <= n; i += kW) StoreF(dst + i, LoadW<WeightType::kF16>(s + i));
    for (; i < n; ++i) dst[i] = F16ToF1(s[i]);
  } else {
    std::memcpy(dst, src, n * sizeof(float));
  }
}

float Dot(const float* a, const float* b, int64_t n) {
  vf acc0{}, acc1{};
  int64_t i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    acc0 += LoadF(a + i) * LoadF(b + i);
    acc1 += LoadF(a + i + kW) * LoadF(b + i + kW);
  }
  for (; i + kW <= n; i += kW) acc0 += LoadF(a + i) * LoadF(b + i);
  float s = HSum(acc0 + acc1);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

MS_INLINE float SumSquares(const float* x, int64_t d) {
  vf acc{};
  int64_t i = 0;
  for (; i + kW <= d; i += kW) {
    const vf v = LoadF(x + i);
    acc += v * v;
  }
  double ss = static_cast<double>(HSum(acc));
  for (; i < d; ++i) ss += static_cast<double>(x[i]) * x[i];
  return static_cast<float>(ss);
}

MS_INLINE void ScaleByWeight(const float* x, const float* w, float inv, int64_t d, float* out) {
  int64_t i = 0;
  const vf iv = Splat(inv);
  for (; i + kW <= d; i += kW) StoreF(out + i, LoadF(w + i) * (LoadF(x + i) * iv));
  for (; i < d; ++i) out[i] = w[i] * (x[i] * inv);
}

void RmsNormRow(const float* x, const float* w, float eps, int64_t d, float* out) {
  const double ss = SumSquares(x, d);
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
  ScaleByWeight(x, w, inv, d, out);
}

void AddRmsNormRow(float* r, const float* x, const float* w, float eps, int64_t d, float* out) {
  int64_t i = 0;
  for (; i + kW <= d; i += kW) StoreF(r + i, LoadF(r + i) + LoadF(x + i));
  for (; i < d; ++i) r[i] += x[i];
  RmsNormRow(r, w, eps, d, out);
}

void SiluMulRow(const float* g, const float* u, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + kW <= n; i += kW) {
    const vf gv = LoadF(g + i);
    StoreF(out + i, gv / (1.0f + Exp(-gv)) * LoadF(u + i));
  }
  for (; i < n; ++i) out[i] = g[i] / (1.0f + Exp1(-g[i])) * u[i];
}

void AxpyRow(float a, const float* x, int64_t n, float* y) {
  int64_t i = 0;
  const vf av = Splat(a);
  for (; i + kW <= n; i += kW) StoreF(y + i, LoadF(y + i) + av * LoadF(x + i));
  for (; i < n; ++i) y[i] += a * x[i];
}

float ExpSubSum(float* p, float m, int64_t n) {
  vf acc{};
  int64_t i = 0;
  const vf mv = Splat(m);
  for (; i + kW <= n; i += kW) {
    const vf e = Exp(LoadF(p + i) - mv);
    StoreF(p + i, e);
    acc += e;
  }
  float s = HSum(acc);
  for (; i < n; ++i) {
    p[i] = Exp1(p[i] - m);
    s += p[i];
  }
  return s;
}

// ---- Attention -----------------------------------------------------------------------------------

MS_INLINE float DotShort(const float* a, const float* b, int64_t n) {
  vf acc{};
  int64_t i = 0;
  for (; i + kW <= n; i += kW) acc += LoadF(a + i) * LoadF(b + i);
  float s = HSum(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Lane o of the pair (a, b), read as 2·kW lanes, at level `kHalf` of HSums: the lower (kUpper
// false) or upper operand of the addition that halves each segment of 2·kHalf lanes.
template <int kHalf, bool kUpper, int... kLane>
MS_INLINE vf FoldOperand(vf a, vf b, std::integer_sequence<int, kLane...>) {
  return __builtin_shufflevector(a, b, ((kLane / kHalf) * 2 * kHalf + kLane % kHalf + (kUpper ? kHalf : 0))...);
}

// v[0..2·kHalf) each hold the partial sums of kW / (2·kHalf) rows in segments of 2·kHalf lanes;
// folds them pairwise into v[0..kHalf), segments of kHalf lanes, twice the rows each, in order.
template <int kHalf>
MS_INLINE void FoldLevel(vf* v) {
  constexpr auto kLanes = std::make_integer_sequence<int, kW>{};
  for (int i = 0; i < kHalf; ++i) {
    v[i] = FoldOperand<kHalf, false>(v[2 * i], v[2 * i + 1], kLanes) +
           FoldOperand<kHalf, true>(v[2 * i], v[2 * i + 1], kLanes);
  }
  if constexpr (kHalf > 1) FoldLevel<kHalf / 2>(v);
}

// Lane j of the result = HSum(v[j]) for kW vectors, bit for bit (the same pairwise tree: lane i
// plus lane i + w for w = kW/2, ..., 1), by shuffles across the vectors: kW - 1 vector additions
// instead of kW horizontal sums. Clobbers v.
MS_INLINE vf HSumEach(vf* v) {
  FoldLevel<kW / 2>(v);
  return v[0];
}

// s[r] = Σ_i q[i]·k_r[i] for kW key rows k_r = k + r·k_stride, each sum exactly DotShort's.
// REQUIRES: n % kW == 0 (DotShort's scalar tail stays DotShort's).
MS_INLINE void DotKeys(const float* q, const float* k, int64_t k_stride, int64_t n, float* s) {
  vf acc[kW];
  for (int r = 0; r < kW; ++r) acc[r] = vf{};
  for (int64_t i = 0; i < n; i += kW) {
    const vf qv = LoadF(q + i);
    for (int r = 0; r < kW; ++r) acc[r] += qv * LoadF(k + r * k_stride + i);
  }
  StoreF(s, HSumEach(acc));
}

void AttendBlock(const AttendArgs& a, const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t n,
                 float* scores, SoftmaxState* state, float* acc) {
  // With 16 lanes a per-key horizontal sum costs more than the dot product itself (MLA's short
  // rows: 512 + 64 in DeepSeek-V3, 32 + 16 in the default model); with 8 the shuffles gain nothing.
  const bool by_keys = kW == 16 && a.da % kW == 0 && a.db % kW == 0;
  for (int64_t g = 0; g < a.num_queries; ++g) {
    const float* qa = a.qa + g * a.q_stride;
    const float* qb = a.db > 0 ? a.qb + g * a.qb_stride : nullptr;
    float* s = scores + g * n;
    float bm = -INFINITY;
    // kW keys at a time where the widths allow (one reduction across the keys, not one per key);
    // each score is the same float as DotShort's below.
    int64_t key = 0;
    for (; by_keys && key + kW <= n; key += kW) {
      const float* kr = k + key * k_stride;
      float sa[kW], sb[kW];
      DotKeys(qa, kr, k_stride, a.da, sa);
      if (qb != nullptr) DotKeys(qb, kr + a.da, k_stride, a.db, sb);
      for (int r = 0; r < kW; ++r) {
        float d = sa[r];
        if (qb != nullptr) d += sb[r];
        s[key + r] = d * a.scale;
        bm = s[key + r] > bm ? s[key + r] : bm;
      }
    }
    for (; key < n; ++key) {
      const float* kr = k + key * k_stride;
      float d = DotShort(qa, kr, a.da);
      if (qb != nullptr) d += DotShort(qb, kr + a.da, a.db);
      s[key] = d * a.scale;
      bm = s[key] > bm ? s[key] : bm;
    }
    SoftmaxState& st = state[g];
    float* ag = acc + g * a.dv;
    const float new_max = st.max > bm ? st.max : bm;
    if (st.max != new_max) {
      const float corr = Exp1(st.max - new_max);  // 0 on the first block (max = -inf)
      st.sum *= corr;
      const vf cv = Splat(corr);
      int64_t i = 0;
      for (; i + kW <= a.dv; i += kW) StoreF(ag + i, LoadF(ag + i) * cv);
      for (; i < a.dv; ++i) ag[i] *= corr;
      st.max = new_max;
    }
    st.sum += ExpSubSum(s, new_max, n);
    // acc += Σ_j p_j · v_j, four value rows per pass over the accumulator.
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      const float* v0 = v + j * v_stride;
      const float* v1 = v0 + v_stride;
      const float* v2 = v1 + v_stride;
      const float* v3 = v2 + v_stride;
      const vf p0 = Splat(s[j]), p1 = Splat(s[j + 1]), p2 = Splat(s[j + 2]), p3 = Splat(s[j + 3]);
      int64_t i = 0;
      for (; i + kW <= a.dv; i += kW) {
        StoreF(ag + i,
               LoadF(ag + i) + p0 * LoadF(v0 + i) + p1 * LoadF(v1 + i) + p2 * LoadF(v2 + i) + p3 * LoadF(v3 + i));
      }
      for (; i < a.dv; ++i) ag[i] += s[j] * v0[i] + s[j + 1] * v1[i] + s[j + 2] * v2[i] + s[j + 3] * v3[i];
    }
    for (; j < n; ++j) AxpyRow(s[j], v + j * v_stride, a.dv, ag);
  }
}

#ifdef MS_KERNEL_BF16_DOT
constexpr GemmTileFn kGemmBf16Dot = &GemmTileBf16Dot;
#else
constexpr GemmTileFn kGemmBf16Dot = nullptr;
#endif

const CpuKernels& Table() {
  static const CpuKernels k = {
      MS_KERNEL_NAME, {&GemmTile<WeightType::kF32>, &GemmTile<WeightType::kBF16>, &GemmTile<WeightType::kF16>},
      &WidenRow,      &RmsNormRow,
      &AddRmsNormRow, &SiluMulRow,
      &AxpyRow,       &Dot,
      &ExpSubSum,     &AttendBlock,
      kGemmBf16Dot,
  };
  return k;
}

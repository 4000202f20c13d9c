// The bf16 dot-product GEMM (CpuKernels::gemm_bf16_dot), for the avx512_bf16 level only: included
// by cpu_kernels_impl.h inside that level's namespace when MS_KERNEL_BF16_DOT is defined (the
// including file has included <immintrin.h> and is compiled with -mavx512bf16, and the level is
// picked only where CPUID and the OS report AVX512_BF16).
//
// out[t, n] = Σ_k bf16(x[t, k]) · w[n, k] for bf16 weights w [N, K] row-major as stored: the
// activations are rounded to bf16 (round to nearest even, as llama.cpp and oneDNN do) and each
// vdpbf16ps multiplies 16 pairs of bf16 pairs and adds both products to 16 fp32 lanes. The products
// are exact in fp32; the instruction treats bf16 subnormals as zero. A bf16 row read as 32-bit
// lanes is already the pair layout the instruction takes, so the weights are used in place (no
// repacking at load). Per K slice and MR activation rows, the rows are rounded into a stack buffer
// (kept in L1) and run against every NR-row block of the tile's weights: MR·NR accumulators of
// partial sums over k, reduced to one float each at the end of the slice (four at a time, by
// shuffles across the accumulators). The last K % 32 values go through masked loads.

constexpr int64_t kDotKc = 2048;  // K slice: MR rounded rows of it stay in L1
// Prefill micro-tile: MR·NR accumulators + NR weight vectors + 1 activation vector of the 32.
constexpr int kDotMr = 6;
constexpr int kDotNr = 4;

// dst[0, kl) = bf16(src[0, kl)), round to nearest even.
MS_INLINE void RoundRowToBf16(const float* src, int64_t kl, uint16_t* dst) {
  int64_t k = 0;
  for (; k + 32 <= kl; k += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
    _mm512_storeu_si512(dst + k, (__m512i)v);
  }
  if (k < kl) {
    const int64_t r = kl - k;
    const __mmask16 lo = static_cast<__mmask16>(r >= 16 ? 0xffff : (1u << r) - 1);
    const __mmask16 hi = static_cast<__mmask16>(r <= 16 ? 0 : (1u << (r - 16)) - 1);
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + k + 16), _mm512_maskz_loadu_ps(lo, src + k));
    _mm512_mask_storeu_epi16(dst + k, static_cast<__mmask32>((uint64_t{1} << r) - 1), (__m512i)v);
  }
}

// The sums of a, b, c and d's 16 lanes each, into s[0, 4): three levels of shuffles across the four
// (GCC vector shuffles: GCC 12's shuffle intrinsics warn of uninitialized pass-through operands).
MS_INLINE void Sum4(vf a, vf b, vf c, vf d, float* s) {
  // Lanes [0, 8): a's halves added, [8, 16): b's; the same for c, d.
  const vf ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
                __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const vf cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
                __builtin_shufflevector(c, d, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  // Lanes [4j, 4j + 4): partial sums of the j-th of a, b, c, d.
  vf v = __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
         __builtin_shufflevector(ab, cd, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  s[0] = v[0];
  s[1] = v[4];
  s[2] = v[8];
  s[3] = v[12];
}

// Dot products of MR rounded rows xb (row stride ldxb) with NR bf16 rows of w over kl values:
// stores (first slice, with bias) or adds (later slices) into out.
template <int MR, int NR>
MS_INLINE void MicroDot(const uint16_t* xb, int64_t ldxb, const uint16_t* w, int64_t ldw, int64_t kl, float* out,
                        int64_t ldo, const float* bias, bool first) {
  constexpr int kGroups = (NR + 3) / 4;
  __m512 acc[MR][kGroups * 4];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kGroups * 4; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= kl; k += 32) {
    __m512bh wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = (__m512bh)_mm512_loadu_si512(w + j * ldw + k);
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(xb + i * ldxb + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
    }
  }
  if (k < kl) {
    const __mmask32 m = static_cast<__mmask32>((uint64_t{1} << (kl - k)) - 1);
    __m512bh wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + j * ldw + k);
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, xb + i * ldxb + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
    }
  }
  float r[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int g = 0; g < kGroups; ++g) {
      float s[4];
      Sum4((vf)acc[i][4 * g], (vf)acc[i][4 * g + 1], (vf)acc[i][4 * g + 2], (vf)acc[i][4 * g + 3], s);
      for (int j = 4 * g; j < NR && j < 4 * g + 4; ++j) r[i][j] = s[j - 4 * g];
    }
  }
  StoreSums<MR, NR>(r, out, ldo, bias, first);
}

// MicroDot<MR, NR> for run-time mr <= MR, nr <= NR (the ragged edges of a tile).
template <int MR, int NR>
MS_INLINE void MicroDotEdge(int64_t mr, int64_t nr, const uint16_t* xb, int64_t ldxb, const uint16_t* w, int64_t ldw,
                            int64_t kl, float* out, int64_t ldo, const float* bias, bool first) {
  if constexpr (MR > 1) {
    if (mr < MR) {
      MicroDotEdge<MR - 1, NR>(mr, nr, xb, ldxb, w, ldw, kl, out, ldo, bias, first);
      return;
    }
  }
  if constexpr (NR > 1) {
    if (nr < NR) {
      MicroDotEdge<MR, NR - 1>(mr, nr, xb, ldxb, w, ldw, kl, out, ldo, bias, first);
      return;
    }
  }
  MicroDot<MR, NR>(xb, ldxb, w, ldw, kl, out, ldo, bias, first);
}

template <int MR, int NR>
MS_INLINE void TileDot(const GemmArgs& a, int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
  const uint16_t* w = static_cast<const uint16_t*>(a.w);
  alignas(64) uint16_t xb[MR * kDotKc];
  for (int64_t kc = 0; kc < a.K; kc += kDotKc) {
    const int64_t kl = a.K - kc < kDotKc ? a.K - kc : kDotKc;
    const bool first = kc == 0;
    for (int64_t t = t0; t < t1; t += MR) {
      const int64_t mr = t1 - t < MR ? t1 - t : MR;
      for (int64_t i = 0; i < mr; ++i) RoundRowToBf16(a.x + (t + i) * a.ldx + kc, kl, xb + i * kDotKc);
      float* orow = a.out + t * a.ldo;
      for (int64_t n = n0; n < n1; n += NR) {
        const int64_t nr = n1 - n < NR ? n1 - n : NR;
        const uint16_t* wp = w + n * a.ldw + kc;
        const float* bp = a.bias != nullptr ? a.bias + n : nullptr;
        if (mr == MR && nr == NR) {
          MicroDot<MR, NR>(xb, kDotKc, wp, a.ldw, kl, orow + n, a.ldo, bp, first);
        } else {
          MicroDotEdge<MR, NR>(mr, nr, xb, kDotKc, wp, a.ldw, kl, orow + n, a.ldo, bp, first);
        }
      }
    }
  }
}

void GemmTileBf16Dot(const GemmArgs& a, int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
  if (t1 - t0 == 1) {
    TileDot<1, 8>(a, t0, t1, n0, n1);  // decode: one input row, many weight streams
  } else {
    TileDot<kDotMr, kDotNr>(a, t0, t1, n0, n1);
  }
}

// MoE grouped GEMM (see moe_grouped_gemm.cuh): every expert's rows in one launch.
//
// Grid (max M-tiles, N-tiles); a CTA reads its expert from the device-side tile schedule and
// exits when its M-tile is past *num_m_tiles (the grid is sized from T·K, never from the routing,
// so the launch is CUDA-graph capturable). CTA tile 64 rows × 128 weight rows, 8 warps as 2 (M) ×
// 4 (N), each warp 32 × 32 from 2 × 4 mma.sync.m16n8k16 bf16 (fp32 accumulation). Operands come
// through a cp.async pipeline (4 stages for bf16 weights, 3 for fp8) into 128-byte rows swizzled
// by (chunk ^ row % 8) so ldmatrix is conflict-free. The A loads gather x rows by token
// (row_token), fusing the permutation into the GEMM. Warps whose 16-row slices are all padding
// skip their MMAs (decode: one real row per expert tile).
// fp8 weights (W8A16): e4m3 tiles are loaded as bytes (half the traffic of bf16), widened in
// registers to bf16 by bit moves and multiplied by the 128×128 block scale (bf16, one per stage),
// so activations keep bf16 precision. Bytes/FLOPs per layer: each touched expert's weights once
// per M-tile (2·N_w·K or N_w·K bytes), A rows once per N-tile (L2), 2·rows·N_w·K FLOPs.

#include <cuda_bf16.h>

#include "cuda/common.cuh"
#include "cuda/mma_utils.cuh"
#include "cuda/moe_grouped_gemm.cuh"
#include "cuda/moe_permute.cuh"

namespace moeserve::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kBM = kMoeTileM;
constexpr int kBN = kMoeGemmTileN;
constexpr int kWB = kMoeGemmStageWeightBytes;  // weight bytes per row per stage

// Byte offset of 16-byte chunk `ch` of smem row `row` (rows of 128 or 256 bytes): chunks are
// XOR-swizzled within each 128-byte half.
__device__ __forceinline__ int Swz(int row, int ch, int row_bytes) {
  return row * row_bytes + (((ch & ~7) | ((ch ^ row) & 7)) << 4);
}

// Four e4m3 bytes (k order [2q, 2q+1, 2q+8, 2q+9] after PermuteFp8ForMma) → the two bf16x2 B
// registers of an m16n8k16 fragment, times `scale` (= 2^120 · block scale, in bf16). A byte b maps
// to the bf16 bits (b & 0x80) << 8 | (b & 0x7f) << 4, which is the e4m3 value × 2^-120 (normal
// and subnormal alike); the scale multiply restores the magnitude. e4m3 NaN (0x7f) is not expected
// in weights.
__device__ __forceinline__ void Fp8ToBf16(unsigned v, __nv_bfloat162 scale, unsigned& b0, unsigned& b1) {
  unsigned lo = __byte_perm(v, 0u, 0x1404u);  // halves: byte0 << 8, byte1 << 8
  unsigned hi = __byte_perm(v, 0u, 0x3424u);  // halves: byte2 << 8, byte3 << 8
  lo = (lo & 0x80008000u) | ((lo >> 4) & 0x07f007f0u);
  hi = (hi & 0x80008000u) | ((hi >> 4) & 0x07f007f0u);
  __nv_bfloat162 l = __hmul2(*reinterpret_cast<__nv_bfloat162*>(&lo), scale);
  __nv_bfloat162 h = __hmul2(*reinterpret_cast<__nv_bfloat162*>(&hi), scale);
  b0 = *reinterpret_cast<unsigned*>(&l);
  b1 = *reinterpret_cast<unsigned*>(&h);
}

template <bool kFp8, bool kSilu>
__global__ void __launch_bounds__(kThreads) MoeGroupedGemmKernel(MoeGemmParams p) {
  constexpr int kABytes = kFp8 ? 256 : 128;  // A row bytes per stage (BK bf16 values)
  constexpr int kAChunks = kABytes / 16;
  constexpr int kBK = kFp8 ? 128 : 64;  // k per stage
  constexpr int kStages = kFp8 ? 3 : 4;
  constexpr int kATile = kBM * kABytes;
  constexpr int kStageBytes = kATile + kBN * kWB;
  constexpr int kAIters = kBM * kAChunks / kThreads;    // 2 or 4
  constexpr int kBIters = kBN * (kWB / 16) / kThreads;  // 4

  const int m_tile = blockIdx.x;
  if (m_tile >= *p.num_m_tiles) return;
  extern __shared__ __align__(128) char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3;
  const int64_t m0 = static_cast<int64_t>(m_tile) * kBM;
  const int e = p.tile_expert[m_tile];
  const int valid_rows = __syncthreads_count(tid < kBM && p.valid_rows[m0 + tid] >= 0);
  if (e < 0 || e >= p.num_experts) return;  // unreachable with a consistent schedule

  const int64_t n_w = kSilu ? 2 * p.n : p.n;  // weight rows per expert
  const int64_t w_row_bytes = kFp8 ? p.k : 2 * p.k;
  const int64_t a_row_bytes = 2 * p.k;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * (kSilu ? kBN / 2 : kBN);
  const char* w_base = static_cast<const char*>(p.w) + static_cast<int64_t>(e) * n_w * w_row_bytes;
  const char* a_base = static_cast<const char*>(p.a);

  // Per-thread source rows (fixed across the k loop); null = zero fill.
  const char* a_src[kAIters];
  int a_row[kAIters], a_ch[kAIters];
#pragma unroll
  for (int i = 0; i < kAIters; ++i) {
    const int c = tid + i * kThreads;
    a_row[i] = c / kAChunks;
    a_ch[i] = c % kAChunks;
    const int64_t r = m0 + a_row[i];
    const int64_t src = p.a_rows != nullptr ? p.a_rows[r] : r;
    a_src[i] = src >= 0 ? a_base + src * a_row_bytes : nullptr;
  }
  const char* b_src[kBIters];
  int b_row[kBIters], b_ch[kBIters];
#pragma unroll
  for (int i = 0; i < kBIters; ++i) {
    const int c = tid + i * kThreads;
    b_row[i] = c / (kWB / 16);
    b_ch[i] = c % (kWB / 16);
    const int64_t col = n0 + (kSilu ? (b_row[i] & (kBN / 2 - 1)) : b_row[i]);
    const int64_t wrow = kSilu ? (b_row[i] >= kBN / 2 ? p.n : 0) + col : col;
    b_src[i] = col < p.n ? w_base + wrow * w_row_bytes : nullptr;
  }

  auto load_stage = [&](int slot, int kt) {
    char* sa = smem + slot * kStageBytes;
    char* sb = sa + kATile;
#pragma unroll
    for (int i = 0; i < kAIters; ++i) {
      const int64_t off = static_cast<int64_t>(kt) * kABytes + a_ch[i] * 16;
      const bool ok = a_src[i] != nullptr && off < a_row_bytes;
      CpAsync16(sa + Swz(a_row[i], a_ch[i], kABytes), ok ? a_src[i] + off : a_base, ok ? 16 : 0);
    }
#pragma unroll
    for (int i = 0; i < kBIters; ++i) {
      const int64_t off = static_cast<int64_t>(kt) * kWB + b_ch[i] * 16;
      const bool ok = b_src[i] != nullptr && off < w_row_bytes;
      CpAsync16(sb + Swz(b_row[i], b_ch[i], kWB), ok ? b_src[i] + off : w_base, ok ? 16 : 0);
    }
  };

  float acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.0f;

  const bool active0 = wm * 32 < valid_rows, active1 = wm * 32 + 16 < valid_rows;
  // smem row of the warp's B pair pp (n8 tiles 2pp, 2pp+1): silu → gate rows, then up rows.
  const int b_base[2] = {kSilu ? wn * 16 : wn * 32, kSilu ? kBN / 2 + wn * 16 : wn * 32 + 16};
  const int ktiles = static_cast<int>((p.k + kBK - 1) / kBK);

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) load_stage(s, s);
    CpAsyncCommit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    CpAsyncWait<kStages - 2>();
    __syncthreads();
    if (kt + kStages - 1 < ktiles) load_stage((kt + kStages - 1) % kStages, kt + kStages - 1);
    CpAsyncCommit();
    const char* sa = smem + (kt % kStages) * kStageBytes;
    const char* sb = sa + kATile;

    auto mma_step = [&](int s, const unsigned(&b)[4][2]) {
      unsigned af[2][4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int row = wm * 32 + i * 16 + (lane & 15);
        LdMatrixX4(af[i], sa + Swz(row, 2 * s + (lane >> 4), kABytes));
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        if (active0) Mma(acc[0][j], af[0], b[j][0], b[j][1]);
        if (active1) Mma(acc[1][j], af[1], b[j][0], b[j][1]);
      }
    };

    if constexpr (!kFp8) {
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        unsigned b[4][2];
#pragma unroll
        for (int pp = 0; pp < 2; ++pp) {
          unsigned r[4];
          const int row = b_base[pp] + (lane & 7) + ((lane >> 4) << 3);
          LdMatrixX4(r, sb + Swz(row, 2 * s + ((lane >> 3) & 1), kWB));
          b[2 * pp][0] = r[0];
          b[2 * pp][1] = r[1];
          b[2 * pp + 1][0] = r[2];
          b[2 * pp + 1][1] = r[3];
        }
        mma_step(s, b);
      }
    } else {
      // One 128×128 scale block per stage: gate and up blocks differ in the silu mode.
      const int64_t kb = p.k / 128;
      const float* ws = p.w_scales + static_cast<int64_t>(e) * (n_w / 128) * kb + kt;
      const float s_lo = ws[(n0 / 128) * kb];
      const float s_hi = kSilu ? ws[((p.n + n0) / 128) * kb] : s_lo;
      constexpr float k2p120 = 1.329227995784916e36f;  // 2^120
      const __nv_bfloat162 sc[2] = {__float2bfloat162_rn(s_lo * k2p120), __float2bfloat162_rn(s_hi * k2p120)};
#pragma unroll
      for (int s2 = 0; s2 < 4; ++s2) {
        unsigned raw[4][2];
#pragma unroll
        for (int pp = 0; pp < 2; ++pp) {
          unsigned r[4];
          const int row = b_base[pp] + (lane & 7) + ((lane >> 4) << 3);
          LdMatrixX4(r, sb + Swz(row, 2 * s2 + ((lane >> 3) & 1), kWB));
          raw[2 * pp][0] = r[0];
          raw[2 * pp][1] = r[1];
          raw[2 * pp + 1][0] = r[2];
          raw[2 * pp + 1][1] = r[3];
        }
#pragma unroll
        for (int kk = 0; kk < 2; ++kk) {
          unsigned b[4][2];
#pragma unroll
          for (int j = 0; j < 4; ++j) Fp8ToBf16(raw[j][kk], sc[kSilu ? j >> 1 : 0], b[j][0], b[j][1]);
          mma_step(2 * s2 + kk, b);
        }
      }
    }
  }
  CpAsyncWait<0>();

  // Epilogue: thread owns rows (lane / 4) and +8 of each 16-row slice, column pairs 2·(lane % 4).
  bf16* out = static_cast<bf16*>(p.out);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int lr = wm * 32 + i * 16 + (lane >> 2) + h * 8;
      if (!kSilu && lr >= valid_rows) continue;
      bf16* orow = out + (m0 + lr) * p.n;
      if constexpr (kSilu) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int64_t col = n0 + wn * 16 + j * 8 + 2 * (lane & 3);
          if (col >= p.n) continue;
          const float g0 = acc[i][j][2 * h], g1 = acc[i][j][2 * h + 1];
          const float u0 = acc[i][j + 2][2 * h], u1 = acc[i][j + 2][2 * h + 1];
          *reinterpret_cast<__nv_bfloat162*>(orow + col) =
              __floats2bfloat162_rn(g0 / (1.0f + __expf(-g0)) * u0, g1 / (1.0f + __expf(-g1)) * u1);
        }
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t col = n0 + wn * 32 + j * 8 + 2 * (lane & 3);
          if (col >= p.n) continue;
          *reinterpret_cast<__nv_bfloat162*>(orow + col) =
              __floats2bfloat162_rn(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
        }
      }
    }
  }
}

template <bool kFp8, bool kSilu>
cudaError_t Launch(const MoeGemmParams& p, cudaStream_t stream) {
  const MoeWeightFormat f = kFp8 ? MoeWeightFormat::kFp8Block128 : MoeWeightFormat::kBf16;
  const int smem = static_cast<int>(MoeGemmSharedBytes(f));
  auto* kernel = &MoeGroupedGemmKernel<kFp8, kSilu>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(p.max_m_tiles), static_cast<unsigned>(MoeGemmNTiles(p.n, kSilu)));
  kernel<<<grid, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchMoeGroupedGemm(const MoeGemmParams& p, cudaStream_t stream) {
  if (p.max_m_tiles == 0 || p.n == 0) return cudaSuccess;
  const bool fp8 = p.format == MoeWeightFormat::kFp8Block128;
  if (p.a == nullptr || p.w == nullptr || p.out == nullptr || p.tile_expert == nullptr || p.num_m_tiles == nullptr ||
      p.valid_rows == nullptr || p.num_experts <= 0 || p.k <= 0 || p.max_m_tiles > 0x7fffffff || p.k % 8 != 0 ||
      p.n % 2 != 0 || (fp8 && (p.w_scales == nullptr || p.k % 128 != 0 || p.n % 128 != 0))) {
    return cudaErrorInvalidValue;
  }
  if (fp8) return p.gate_up_silu ? Launch<true, true>(p, stream) : Launch<true, false>(p, stream);
  return p.gate_up_silu ? Launch<false, true>(p, stream) : Launch<false, false>(p, stream);
}

}  // namespace moeserve::kernels

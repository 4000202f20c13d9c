// W8A8 MoE kernels (see moe_fp8_gemm.cuh).
//
// Quantize: one warp per (row, 128-channel block); lane l owns logical columns {2q, 2q+1, 2q+8,
// 2q+9} of 16-column group l / 4 (q = l % 4), which PermuteFp8ForMma stores at bytes 4q..4q+3, so
// every lane writes one aligned 4-byte word. Reads 2 bytes and writes 1 + 4/128 bytes per element.
//
// Grouped GEMM: grid (max M-tiles, N-tiles); a CTA exits past *num_m_tiles and takes its expert
// from the tile schedule. CTA tile 64 rows × 128 weight rows, K staged 128 bytes (one scale block)
// at a time through a 3-stage cp.async pipeline into 128-byte smem rows swizzled by
// (chunk ^ row % 8). 8 warps as 2 (M) × 4 (N), each 32 rows × 4 n8-tiles of
// mma.sync.m16n8k32.e4m3 (fp32). Since ldmatrix hands thread t bytes 4·(t%4).. of row t/4, the
// same as the e4m3 A and B fragments, both operands load with plain ldmatrix.x4; A and W share the
// permuted K order inside each 16-byte group, which leaves every dot product unchanged. Each
// 128-K slice is accumulated in its own registers, then added to the total times
// a_scale[row] · w_scale[block] (DeepGEMM's promotion, every slice). In the gate_up_silu mode a
// warp's tiles are 16 gate rows and the matching 16 up rows, so silu(g) · u is formed in
// registers. Bytes: weights once per M-tile (N_w·K + scales), A once per N-tile; FLOPs 2·rows·N_w·K.

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "cuda/mma_utils.cuh"
#include "cuda/moe_fp8_gemm.cuh"

namespace moeserve::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kBM = kMoeTileM;      // 64
constexpr int kBN = kMoeGemmTileN;  // 128 weight rows
constexpr int kBK = 128;            // K bytes per stage
constexpr int kStages = kMoeFp8GemmStages;
constexpr int kATile = kBM * kBK;
constexpr int kStageBytes = kATile + kBN * kBK;
static_assert(kStages * kStageBytes == MoeFp8GemmSharedBytes(), "smem plan");

// Byte offset of 16-byte chunk `ch` (0..7) of a 128-byte smem row.
__device__ __forceinline__ int Swz(int row, int ch) { return row * 128 + ((ch ^ (row & 7)) << 4); }

__global__ void __launch_bounds__(kThreads) MoeQuantizeFp8Kernel(MoeQuantizeFp8Params p) {
  const int64_t blocks = p.k / kMoeFp8ActBlock;
  const int64_t unit = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
  const int64_t row = unit / blocks, kb = unit % blocks;
  if (row >= p.rows) return;
  if (p.num_m_tiles != nullptr && row >= static_cast<int64_t>(*p.num_m_tiles) * kMoeTileM) return;
  const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
  const int64_t base = row * p.k + kb * kMoeFp8ActBlock + 16 * g;
  const auto* x = static_cast<const __nv_bfloat162*>(p.x);
  const float2 v0 = __bfloat1622float2(x[(base + 2 * q) / 2]);
  const float2 v1 = __bfloat1622float2(x[(base + 2 * q + 8) / 2]);
  float amax = fmaxf(fmaxf(fabsf(v0.x), fabsf(v0.y)), fmaxf(fabsf(v1.x), fabsf(v1.y)));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float s = __fdiv_rn(fmaxf(amax, kMoeFp8MinAmax), kE4M3Max);
  const __nv_fp8x2_storage_t lo =
      __nv_cvt_float2_to_fp8x2(make_float2(__fdiv_rn(v0.x, s), __fdiv_rn(v0.y, s)), __NV_SATFINITE, __NV_E4M3);
  const __nv_fp8x2_storage_t hi =
      __nv_cvt_float2_to_fp8x2(make_float2(__fdiv_rn(v1.x, s), __fdiv_rn(v1.y, s)), __NV_SATFINITE, __NV_E4M3);
  reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(p.q) + base)[q] =
      static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  if (lane == 0) p.scales[row * blocks + kb] = s;
}

template <bool kSilu>
__global__ void __launch_bounds__(kThreads) MoeFp8GemmKernel(MoeFp8GemmParams p) {
  const int m_tile = blockIdx.x;
  if (m_tile >= *p.num_m_tiles) return;
  extern __shared__ __align__(128) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3;
  const int e = p.tile_expert[m_tile];
  const int64_t m0 = static_cast<int64_t>(m_tile) * kBM;
  const int64_t K = p.k, N = p.n, kblocks = K / kBK;
  const int64_t nw = kSilu ? 2 * N : N;  // weight rows per expert
  // Output columns of this CTA: [c0, c0 + 64) (silu) or [c0, c0 + 128).
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * (kSilu ? kBN / 2 : kBN);
  const auto* w_e = static_cast<const uint8_t*>(p.w) + static_cast<int64_t>(e) * nw * K;
  const float* ws_e = p.w_scales + static_cast<int64_t>(e) * (nw / 128) * kblocks;
  const auto* a = static_cast<const uint8_t*>(p.a);

  // Loader: A 64 rows × 8 chunks (2 per thread), W 128 rows × 8 chunks (4 per thread).
  const uint8_t* a_src[2];
  int a_bytes[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = (tid + i * kThreads) >> 3;
    const int64_t src = p.a_rows != nullptr ? p.a_rows[m0 + r] : m0 + r;
    a_src[i] = src >= 0 ? a + src * K : a;
    a_bytes[i] = src >= 0 ? 16 : 0;
  }
  const uint8_t* w_src[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = (tid + i * kThreads) >> 3;
    const int64_t wrow = kSilu ? (r < 64 ? c0 + r : N + c0 + (r - 64)) : c0 + r;
    w_src[i] = w_e + wrow * K;
  }
  auto load = [&](int64_t kb, int slot) {
    uint8_t* st = smem + slot * kStageBytes;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int id = tid + i * kThreads, r = id >> 3, ch = id & 7;
      CpAsync16(st + Swz(r, ch), a_src[i] + (a_bytes[i] ? kb * kBK + ch * 16 : 0), a_bytes[i]);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int id = tid + i * kThreads, r = id >> 3, ch = id & 7;
      CpAsync16(st + kATile + Swz(r, ch), w_src[i] + kb * kBK + ch * 16, 16);
    }
  };

  // The thread's accumulator rows (per 16-row slice i, half h) and their scale rows.
  int64_t srow[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t r = m0 + wm * 32 + i * 16 + (lane >> 2) + h * 8;
      srow[i][h] = p.a_rows != nullptr ? p.a_rows[r] : r;  // < 0: padding (scale 0)
    }
  }
  // Weight scale row block of each n8 tile.
  int64_t wblock[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) wblock[j] = kSilu ? (j < 2 ? c0 : N + c0) / 128 : c0 / 128;
  // smem W row of n8 tile j of this warp.
  auto wrow = [&](int j) { return kSilu ? (j < 2 ? 16 * wn + 8 * j : 64 + 16 * wn + 8 * (j - 2)) : 32 * wn + 8 * j; };

  float acc[2][4][4] = {};
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < kblocks) load(s, s);
    CpAsyncCommit();
  }
  for (int64_t kb = 0; kb < kblocks; ++kb) {
    CpAsyncWait<kStages - 2>();
    __syncthreads();
    if (kb + kStages - 1 < kblocks) load(kb + kStages - 1, static_cast<int>((kb + kStages - 1) % kStages));
    CpAsyncCommit();
    const uint8_t* st = smem + static_cast<int>(kb % kStages) * kStageBytes;
    float part[2][4][4] = {};
#pragma unroll
    for (int ks = 0; ks < kBK / 32; ++ks) {
      unsigned af[2][4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int mat = lane >> 3;
        const int r = wm * 32 + i * 16 + (mat & 1) * 8 + (lane & 7);
        LdMatrixX4(af[i], st + Swz(r, 2 * ks + (mat >> 1)));
      }
      unsigned bf[4][2];
#pragma unroll
      for (int jj = 0; jj < 2; ++jj) {
        const int mat = lane >> 3;
        const int r = wrow(2 * jj + (mat >> 1)) + (lane & 7);
        unsigned t[4];
        LdMatrixX4(t, st + kATile + Swz(r, 2 * ks + (mat & 1)));
        bf[2 * jj][0] = t[0];
        bf[2 * jj][1] = t[1];
        bf[2 * jj + 1][0] = t[2];
        bf[2 * jj + 1][1] = t[3];
      }
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) MmaE4m3(part[i][j], af[i], bf[j][0], bf[j][1]);
      }
    }
    float wsc[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) wsc[j] = __ldg(ws_e + wblock[j] * kblocks + kb);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float as = srow[i][h] >= 0 ? __ldg(p.a_scales + srow[i][h] * kblocks + kb) : 0.0f;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          acc[i][j][2 * h] += part[i][j][2 * h] * (as * wsc[j]);
          acc[i][j][2 * h + 1] += part[i][j][2 * h + 1] * (as * wsc[j]);
        }
      }
    }
  }
  CpAsyncWait<0>();

  // Epilogue: thread owns rows (lane / 4) and +8 of each 16-row slice, column pairs 2·(lane % 4).
  auto* out = static_cast<__nv_bfloat16*>(p.out);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t r = m0 + wm * 32 + i * 16 + (lane >> 2) + h * 8;
      const bool valid = p.valid_rows[r] >= 0;
      if (!kSilu && !valid) continue;
      __nv_bfloat16* orow = out + r * N;
      if constexpr (kSilu) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int64_t col = c0 + wn * 16 + j * 8 + 2 * (lane & 3);
          const float g0 = acc[i][j][2 * h], g1 = acc[i][j][2 * h + 1];
          const float u0 = acc[i][j + 2][2 * h], u1 = acc[i][j + 2][2 * h + 1];
          *reinterpret_cast<__nv_bfloat162*>(orow + col) =
              valid ? __floats2bfloat162_rn(g0 / (1.0f + __expf(-g0)) * u0, g1 / (1.0f + __expf(-g1)) * u1)
                    : __floats2bfloat162_rn(0.0f, 0.0f);
        }
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t col = c0 + wn * 32 + j * 8 + 2 * (lane & 3);
          *reinterpret_cast<__nv_bfloat162*>(orow + col) =
              __floats2bfloat162_rn(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
        }
      }
    }
  }
}

template <bool kSilu>
cudaError_t Launch(const MoeFp8GemmParams& p, cudaStream_t stream) {
  const int smem = static_cast<int>(MoeFp8GemmSharedBytes());
  auto* kernel = &MoeFp8GemmKernel<kSilu>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(p.max_m_tiles), static_cast<unsigned>(p.n / (kSilu ? kBN / 2 : kBN)));
  kernel<<<grid, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchMoeQuantizeFp8(const MoeQuantizeFp8Params& p, cudaStream_t stream) {
  if (p.rows == 0 || p.k == 0) return cudaSuccess;
  if (p.x == nullptr || p.q == nullptr || p.scales == nullptr || p.rows < 0 || p.k % kMoeFp8ActBlock != 0) {
    return cudaErrorInvalidValue;
  }
  const int64_t units = p.rows * (p.k / kMoeFp8ActBlock);
  const int64_t blocks = (units + kThreads / 32 - 1) / (kThreads / 32);
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  MoeQuantizeFp8Kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t LaunchMoeFp8GroupedGemm(const MoeFp8GemmParams& p, cudaStream_t stream) {
  if (p.max_m_tiles == 0 || p.n == 0) return cudaSuccess;
  if (p.a == nullptr || p.a_scales == nullptr || p.w == nullptr || p.w_scales == nullptr || p.out == nullptr ||
      p.tile_expert == nullptr || p.num_m_tiles == nullptr || p.valid_rows == nullptr || p.num_experts <= 0 ||
      p.k <= 0 || p.max_m_tiles > 0x7fffffff || p.k % 128 != 0 || p.n % 128 != 0) {
    return cudaErrorInvalidValue;
  }
  return p.gate_up_silu ? Launch<true>(p, stream) : Launch<false>(p, stream);
}

}  // namespace moeserve::kernels

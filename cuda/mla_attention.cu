// Absorbed MLA attention over the paged latent cache (see mla_attention.cuh, mla_plan.h).
//
// Tensor-core kernel (L = 512, R = 64), one CTA per (token, tile of 16·G heads, KV split), 2·G
// warps. The CTA's queries (16·G × 576 bf16) sit in shared memory; latent rows stream through a
// cp.async pipeline of 32-row tiles (G = 4: 3 stages, else 2), each tile read from HBM once for all
// the CTA's heads. Warp w owns head group w % G (16 heads = the mma M dimension) and half
// c = w / G: it computes the scores of tile rows [16c, 16c + 16) over all 576 dims
// (36 k-steps × 2 n-tiles of m16n8k16), the two halves exchange row maxima and the bf16
// probabilities through shared memory, and then warp (g, c) accumulates output dims
// [256c, 256c + 256) of its 16 heads over all 32 rows (2 k-steps × 32 n-tiles; values read with
// ldmatrix.trans from the same tile). Online softmax in the exp2 domain, fp32 accumulators
// (128 per thread for the output). Shared rows are padded to 584 elements so the 8 rows of an
// ldmatrix hit distinct banks.
// Per token: bytes = ctx × 1152 (latent rows, once per head tile) + H × 1152 (query) + H × 1024
// (output); FLOPs = 2 × ctx × H × (576 + 512).
//
// Split-KV: each split covers a contiguous range of tiles and writes its normalised partial output
// (fp32) and log2-sum-exp; MlaCombineKernel merges the splits per (token, head).
//
// Generic kernel (other shapes, test models): one CTA of 128 threads per (token, head), scalar
// fp32, as simple as possible; it is the correctness path, not a fast one.

#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/mla_attention.cuh"
#include "cuda/mma_utils.cuh"
#include "cuda/online_softmax.cuh"

namespace moeserve::kernels {
namespace {

constexpr int kN = kMlaTileTokens;             // rows per tile
constexpr int kD = kMlaTcLatent + kMlaTcRope;  // 576
constexpr int kL = kMlaTcLatent;               // 512
constexpr int kRow = kMlaSmemRow;              // 584
constexpr int kPRow = kMlaPRow;                // 40
constexpr int kChunksPerRow = kD / 8;          // 16-byte chunks per latent row: 72
constexpr float kLog2e = 1.4426950408889634f;

// Where query token t sits: its sequence, the number of cache rows it attends to (causal), and
// whether the layout in device memory is consistent.
struct TokenContext {
  int seq = 0;
  int64_t n_ctx = 0;
  bool ok = false;
};
__device__ __forceinline__ TokenContext FindContext(const MlaAttentionParams& p, int t) {
  int lo = 0, hi = p.num_seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (p.query_start_loc[mid] <= t)
      lo = mid;
    else
      hi = mid - 1;
  }
  TokenContext c;
  c.seq = lo;
  const int q_begin = p.query_start_loc[lo], q_end = p.query_start_loc[lo + 1];
  c.n_ctx = static_cast<int64_t>(p.seq_lens[lo]) - (q_end - q_begin) + (t - q_begin) + 1;
  c.ok = t >= q_begin && t < q_end && c.n_ctx >= 1 && c.n_ctx <= p.max_blocks_per_seq * p.block_size;
  return c;
}

template <int kG>
struct TcShape {
  static constexpr int kHeads = 16 * kG;
  static constexpr int kWarps = 2 * kG;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kStages = MlaStages(kG);
};

// Writes this CTA's rows of heads [h0, h0 + kHeads) ∩ [0, H) as zeros (no splits) or as an empty
// split (zero partial, lse = -inf).
template <int kG>
__device__ void WriteEmpty(const MlaAttentionParams& p, int t, int h0, int split, int num_splits) {
  using S = TcShape<kG>;
  const int heads = min(S::kHeads, p.num_heads - h0);
  if (num_splits == 1) {
    bf16* out = p.out + (static_cast<int64_t>(t) * p.num_heads + h0) * kL;
    for (int i = threadIdx.x; i < heads * kL; i += S::kThreads) out[i] = FromFloat<bf16>(0.0f);
    return;
  }
  const int64_t row0 = (static_cast<int64_t>(split) * p.num_tokens + t) * p.num_heads + h0;
  float* partial = p.workspace + row0 * kL;
  float* lse = p.workspace + static_cast<int64_t>(num_splits) * p.num_tokens * p.num_heads * kL + row0;
  for (int i = threadIdx.x; i < heads * kL; i += S::kThreads) partial[i] = 0.0f;
  for (int i = threadIdx.x; i < heads; i += S::kThreads) lse[i] = -INFINITY;
}

template <int kG>
__global__ void __launch_bounds__(TcShape<kG>::kThreads, 1)
    MlaTensorCoreKernel(MlaAttentionParams p, int head_tiles, int num_splits) {
  using S = TcShape<kG>;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* q_s = reinterpret_cast<bf16*>(smem);  // [kHeads][kRow]
  bf16* kv_s = q_s + S::kHeads * kRow;        // [kStages][kN][kRow]
  bf16* p_s = kv_s + S::kStages * kN * kRow;  // [kHeads][kPRow]
  __shared__ float red_max[2][S::kHeads];
  __shared__ float red_sum[2][S::kHeads];
  __shared__ int bad_block;

  const int tile = blockIdx.x % head_tiles;
  const int rest = blockIdx.x / head_tiles;
  const int split = rest % num_splits;
  const int t = rest / num_splits;
  const int h0 = tile * S::kHeads;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int grp = warp % kG, half = warp / kG;

  const TokenContext ctx = FindContext(p, t);
  if (!ctx.ok) {
    if (tid == 0) RaiseError(p.error_flags, kErrAttentionLayout);
    WriteEmpty<kG>(p, t, h0, split, num_splits);
    return;
  }
  const int64_t n_tiles = (ctx.n_ctx + kN - 1) / kN;
  const int64_t per_split = (n_tiles + num_splits - 1) / num_splits;
  const int64_t tile_begin = split * per_split;
  const int64_t tile_end = min(n_tiles, tile_begin + per_split);
  if (tile_begin >= tile_end) {
    WriteEmpty<kG>(p, t, h0, split, num_splits);
    return;
  }

  if (tid == 0) bad_block = 0;
  __syncthreads();  // (the returns above are uniform across the CTA)

  // Queries: rows of heads past H are zero.
  for (int c = tid; c < S::kHeads * kChunksPerRow; c += S::kThreads) {
    const int r = c / kChunksPerRow, col = c % kChunksPerRow;
    const int h = h0 + r;
    const int64_t qrow = static_cast<int64_t>(t) * p.num_heads + h;
    const bf16* src = col < kL / 8 ? p.q_latent + qrow * kL + col * 8 : p.q_pe + qrow * kMlaTcRope + (col - kL / 8) * 8;
    CpAsync16(q_s + r * kRow + col * 8, h < p.num_heads ? src : p.q_latent, h < p.num_heads ? 16 : 0);
  }
  CpAsyncCommit();

  const int32_t* blocks = p.block_tables + static_cast<int64_t>(ctx.seq) * p.max_blocks_per_seq;
  auto load_tile = [&](int64_t tile_index, int stage) {
    bf16* dst = kv_s + stage * kN * kRow;
    const int64_t row0 = tile_index * kN;
    for (int c = tid; c < kN * kChunksPerRow; c += S::kThreads) {
      const int r = c / kChunksPerRow, col = c % kChunksPerRow;
      const int64_t j = row0 + r;
      const bf16* src = p.cache;
      bool valid = j < ctx.n_ctx;
      if (valid) {
        const int32_t phys = blocks[j / p.block_size];
        if (phys < 0 || phys >= p.num_blocks) {
          bad_block = 1;
          valid = false;
        } else {
          src = p.cache + (static_cast<int64_t>(phys) * p.block_size + j % p.block_size) * kD + col * 8;
        }
      }
      CpAsync16(dst + r * kRow + col * 8, src, valid ? 16 : 0);
    }
  };
  for (int s = 0; s < S::kStages - 1; ++s) {
    if (tile_begin + s < tile_end) load_tile(tile_begin + s, s);
    CpAsyncCommit();
  }

  const float scale_log2 = p.scale * kLog2e;
  const int g = lane >> 2, q = lane & 3;
  float o[32][4];
#pragma unroll
  for (int n = 0; n < 32; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  // Rows g and g + 8 of the warp's head group; l is this thread's share of the row sum.
  OnlineSoftmax<SoftmaxBase::k2> row_softmax[2];

  const bf16* q_warp = q_s + (grp * 16) * kRow;
  for (int64_t it = tile_begin; it < tile_end; ++it) {
    const int stage = static_cast<int>((it - tile_begin) % S::kStages);
    CpAsyncWait<S::kStages - 2>();
    __syncthreads();  // tile `it` visible; everyone is done with the stage reloaded below
    {
      const int64_t next = it + S::kStages - 1;
      if (next < tile_end) load_tile(next, static_cast<int>((next - tile_begin) % S::kStages));
      CpAsyncCommit();
    }
    const bf16* tile_s = kv_s + stage * kN * kRow;

    // Scores of rows [16·half, 16·half + 16): two accumulator sets (even/odd k-steps) for ILP.
    float sc[2][2][4] = {};
    {
      const bf16* a_base = q_warp + ((lane & 7) + ((lane >> 3) & 1) * 8) * kRow + (lane >> 4) * 8;
      const bf16* b_base = tile_s + (half * 16 + (lane & 7) + (lane >> 4) * 8) * kRow + ((lane >> 3) & 1) * 8;
#pragma unroll 4
      for (int ks = 0; ks < kD / 16; ++ks) {
        uint32_t a[4], b[4];
        LdMatrixX4(a, a_base + ks * 16);
        LdMatrixX4(b, b_base + ks * 16);
        Mma(sc[ks & 1][0], a, b[0], b[1]);
        Mma(sc[ks & 1][1], a, b[2], b[3]);
      }
    }
    const int64_t row_base = it * kN + half * 16;
    float s[2][4];
    float tmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t j = row_base + nt * 8 + 2 * q + (e & 1);
        const float v = (sc[0][nt][e] + sc[1][nt][e]) * scale_log2;
        s[nt][e] = j < ctx.n_ctx ? v : -INFINITY;
        tmax[e >> 1] = fmaxf(tmax[e >> 1], s[nt][e]);
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tmax[r] = QuadMax(tmax[r]);
    }
    if (q == 0) {
      red_max[half][grp * 16 + g] = tmax[0];
      red_max[half][grp * 16 + g + 8] = tmax[1];
    }
    __syncthreads();
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = grp * 16 + g + 8 * r;
      corr[r] = row_softmax[r].Rescale(fmaxf(red_max[0][row], red_max[1][row]));
    }
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      float pr[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        pr[e] = row_softmax[e >> 1].Weight(s[nt][e]);
        row_softmax[e >> 1].l += pr[e];
      }
      const int col = half * 16 + nt * 8 + 2 * q;
      bf16* prow = p_s + (grp * 16 + g) * kPRow + col;
      *reinterpret_cast<uint32_t*>(prow) = PackBf16(pr[0], pr[1]);
      *reinterpret_cast<uint32_t*>(prow + 8 * kPRow) = PackBf16(pr[2], pr[3]);
    }
#pragma unroll
    for (int n = 0; n < 32; ++n) {
      o[n][0] *= corr[0];
      o[n][1] *= corr[0];
      o[n][2] *= corr[1];
      o[n][3] *= corr[1];
    }
    __syncthreads();  // P of both halves visible

    // Output dims [256·half, +256) of the warp's 16 heads over all 32 rows of the tile.
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      uint32_t a[4];
      LdMatrixX4(a, p_s + (grp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kPRow + kk * 16 + (lane >> 4) * 8);
      const bf16* v_base =
          tile_s + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kRow + half * 256 + (lane >> 4) * 8;
#pragma unroll
      for (int np = 0; np < 16; ++np) {
        uint32_t b[4];
        LdMatrixX4Trans(b, v_base + np * 16);
        Mma(o[2 * np], a, b[0], b[1]);
        Mma(o[2 * np + 1], a, b[2], b[3]);
      }
    }
  }
  CpAsyncWait<0>();

  // Row sums were kept per thread (rescaled with o): reduce over the quad, then the two halves.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_softmax[r].l = QuadSum(row_softmax[r].l);
  }
  if (q == 0) {
    red_sum[half][grp * 16 + g] = row_softmax[0].l;
    red_sum[half][grp * 16 + g + 8] = row_softmax[1].l;
  }
  __syncthreads();
  if (bad_block) {
    if (tid == 0) RaiseError(p.error_flags, kErrAttentionLayout);
    WriteEmpty<kG>(p, t, h0, split, num_splits);
    return;
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = grp * 16 + g + 8 * r;
    const int h = h0 + row;
    if (h >= p.num_heads) continue;
    row_softmax[r].l = red_sum[0][row] + red_sum[1][row];  // the whole row's sum
    const float inv = row_softmax[r].InvSum();
    const int64_t orow = static_cast<int64_t>(t) * p.num_heads + h;
    if (num_splits == 1) {
      bf16* out = p.out + orow * kL + half * 256 + 2 * q;
#pragma unroll
      for (int n = 0; n < 32; ++n) {
        *reinterpret_cast<uint32_t*>(out + n * 8) = PackBf16(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
      }
    } else {
      const int64_t prow = static_cast<int64_t>(split) * p.num_tokens * p.num_heads + orow;
      float* out = p.workspace + prow * kL + half * 256 + 2 * q;
#pragma unroll
      for (int n = 0; n < 32; ++n) {
        *reinterpret_cast<float2*>(out + n * 8) = make_float2(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
      }
      if (half == 0 && q == 0) {
        float* lse = p.workspace + static_cast<int64_t>(num_splits) * p.num_tokens * p.num_heads * kL;
        lse[prow] = row_softmax[r].LogSumExp();
      }
    }
  }
}

// out[t, h] = Σ_s 2^(lse_s - lse_max) · partial_s / Σ_s 2^(lse_s - lse_max); 0 when every split is
// empty. One CTA of 128 threads per (token, head).
__global__ void __launch_bounds__(128) MlaCombineKernel(MlaAttentionParams p, int num_splits) {
  __shared__ float w_s[kMlaMaxSplits];
  __shared__ float inv_total;
  const int64_t row = blockIdx.x;  // t * H + h
  const int64_t rows = static_cast<int64_t>(p.num_tokens) * p.num_heads;
  const int L = p.latent_dim;
  const float* lse = p.workspace + static_cast<int64_t>(num_splits) * rows * L;
  if (threadIdx.x == 0) {
    float mx = -INFINITY;
    for (int s = 0; s < num_splits; ++s) mx = fmaxf(mx, lse[s * rows + row]);
    float total = 0.0f;
    for (int s = 0; s < num_splits; ++s) {
      const float w = mx == -INFINITY ? 0.0f : exp2f(lse[s * rows + row] - mx);
      w_s[s] = w;
      total += w;
    }
    inv_total = total > 0.0f ? 1.0f / total : 0.0f;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < L; i += blockDim.x) {
    float acc = 0.0f;
    for (int s = 0; s < num_splits; ++s) {
      if (w_s[s] != 0.0f) acc += w_s[s] * p.workspace[(s * rows + row) * L + i];
    }
    p.out[row * L + i] = FromFloat<bf16>(acc * inv_total);
  }
}

// Generic path: one CTA of 128 threads per (token, head); per block of the cache, warp w scores
// rows w, w + 4, ..., then thread i accumulates output dims i, i + 128, ... (L ≤ 512).
constexpr int kGenThreads = 128;
constexpr int kGenMaxBlock = 1024;  // cache block size bound (scores in shared memory)
__global__ void __launch_bounds__(kGenThreads) MlaGenericKernel(MlaAttentionParams p) {
  constexpr int kVPerThread = kMlaMaxLatent / kGenThreads;
  __shared__ float q_s[kMlaMaxRow];
  extern __shared__ float scores[];  // block_size
  const int t = blockIdx.x / p.num_heads, h = blockIdx.x % p.num_heads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int L = p.latent_dim, D = p.latent_dim + p.rope_dim;
  const int64_t qrow = static_cast<int64_t>(t) * p.num_heads + h;
  bf16* out = p.out + qrow * L;
  const TokenContext ctx = FindContext(p, t);
  if (!ctx.ok) {
    if (threadIdx.x == 0) RaiseError(p.error_flags, kErrAttentionLayout);
    for (int i = threadIdx.x; i < L; i += kGenThreads) out[i] = FromFloat<bf16>(0.0f);
    return;
  }
  for (int i = threadIdx.x; i < D; i += kGenThreads) {
    q_s[i] = i < L ? ToFloat(p.q_latent[qrow * L + i]) : ToFloat(p.q_pe[qrow * p.rope_dim + i - L]);
  }
  __syncthreads();
  float acc[kVPerThread];
#pragma unroll
  for (int r = 0; r < kVPerThread; ++r) acc[r] = 0.0f;
  OnlineSoftmax<SoftmaxBase::kE> softmax;
  bool bad = false;
  const int32_t* blocks = p.block_tables + static_cast<int64_t>(ctx.seq) * p.max_blocks_per_seq;
  for (int64_t b = 0; b * p.block_size < ctx.n_ctx; ++b) {
    const int32_t phys = blocks[b];
    if (phys < 0 || phys >= p.num_blocks) {
      bad = true;  // uniform across the CTA
      break;
    }
    const int n = static_cast<int>(min(static_cast<int64_t>(p.block_size), ctx.n_ctx - b * p.block_size));
    const int64_t slot0 = static_cast<int64_t>(phys) * p.block_size;
    for (int j = warp; j < n; j += kGenThreads / 32) {
      const bf16* row = p.cache + (slot0 + j) * D;
      float dot = 0.0f;
      for (int i = lane; i < D; i += 32) dot += q_s[i] * ToFloat(row[i]);
      dot = WarpSum(dot);
      if (lane == 0) scores[j] = dot * p.scale;
    }
    __syncthreads();
    const float corr = SoftmaxBlockInShared<kGenThreads, kGenMaxBlock>(scores, n, softmax);  // scores -> weights
#pragma unroll
    for (int r = 0; r < kVPerThread; ++r) {
      const int i = threadIdx.x + r * kGenThreads;
      if (i < L) {
        float a = acc[r] * corr;
        for (int j = 0; j < n; ++j) a += scores[j] * ToFloat(p.cache[(slot0 + j) * D + i]);
        acc[r] = a;
      }
    }
    __syncthreads();  // scores are rewritten by the next block
  }
  if (bad) {
    if (threadIdx.x == 0) RaiseError(p.error_flags, kErrAttentionLayout);
    for (int i = threadIdx.x; i < L; i += kGenThreads) out[i] = FromFloat<bf16>(0.0f);
    return;
  }
  const float inv = softmax.InvSum();
#pragma unroll
  for (int r = 0; r < kVPerThread; ++r) {
    const int i = threadIdx.x + r * kGenThreads;
    if (i < L) out[i] = FromFloat<bf16>(acc[r] * inv);
  }
}

template <int kG>
cudaError_t LaunchTensorCore(const MlaAttentionParams& p, const MlaPlan& plan, cudaStream_t stream) {
  using S = TcShape<kG>;
  if (plan.smem_bytes != MlaTcSmemBytes(kG)) return cudaErrorInvalidValue;
  cudaError_t e = cudaFuncSetAttribute(MlaTensorCoreKernel<kG>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(plan.smem_bytes));
  if (e != cudaSuccess) return e;
  const int64_t grid = int64_t{p.num_tokens} * plan.head_tiles * plan.num_splits;
  if (grid > 0x7fffffff) return cudaErrorInvalidValue;
  MlaTensorCoreKernel<kG>
      <<<static_cast<unsigned>(grid), S::kThreads, plan.smem_bytes, stream>>>(p, plan.head_tiles, plan.num_splits);
  e = cudaGetLastError();
  if (e != cudaSuccess || plan.num_splits == 1) return e;
  MlaCombineKernel<<<static_cast<unsigned>(int64_t{p.num_tokens} * p.num_heads), 128, 0, stream>>>(p, plan.num_splits);
  return cudaGetLastError();
}

bool Aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

cudaError_t LaunchMlaAttention(const MlaAttentionParams& p, const MlaPlan& plan, cudaStream_t stream) {
  if (p.num_tokens == 0 || p.num_heads == 0) return cudaSuccess;
  if (p.num_seqs <= 0 || p.block_size <= 0 || p.num_tokens < 0 || !MlaShapeSupported(p.latent_dim, p.rope_dim) ||
      (p.rope_dim > 0 && p.q_pe == nullptr)) {
    return cudaErrorInvalidValue;
  }
  switch (plan.path) {
    case MlaPath::kTensorCore: {
      if (p.latent_dim != kMlaTcLatent || p.rope_dim != kMlaTcRope || plan.num_splits < 1 ||
          plan.num_splits > kMlaMaxSplits || plan.head_tiles * plan.heads_per_cta < p.num_heads ||
          !Aligned16(p.q_latent) || !Aligned16(p.q_pe) || !Aligned16(p.cache) || !Aligned16(p.out)) {
        return cudaErrorInvalidValue;
      }
      if (plan.num_splits > 1) {
        const int64_t need = (int64_t{plan.num_splits} * p.num_tokens * p.num_heads * (p.latent_dim + 1)) * 4;
        if (p.workspace == nullptr || p.workspace_bytes < need || !Aligned16(p.workspace)) {
          return cudaErrorInvalidValue;
        }
      }
      switch (plan.head_groups) {
        case 1: return LaunchTensorCore<1>(p, plan, stream);
        case 2: return LaunchTensorCore<2>(p, plan, stream);
        case 4: return LaunchTensorCore<4>(p, plan, stream);
        default: return cudaErrorInvalidValue;
      }
    }
    case MlaPath::kGeneric: {
      if (p.block_size > kGenMaxBlock) return cudaErrorInvalidValue;
      const int64_t grid = int64_t{p.num_tokens} * p.num_heads;
      if (grid > 0x7fffffff) return cudaErrorInvalidValue;
      MlaGenericKernel<<<static_cast<unsigned>(grid), kGenThreads, p.block_size * sizeof(float), stream>>>(p);
      return cudaGetLastError();
    }
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace moeserve::kernels

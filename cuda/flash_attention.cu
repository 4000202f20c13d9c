// Paged MHA/GQA attention on tensor cores (mma.sync m16n8k16 bf16 -> fp32, ldmatrix, cp.async),
// flash-attention-2 style: online softmax in the log2 domain, P rounded to bf16 for P·V.
//
// One kernel template, two shapes (4 warps, 128 threads, 64-token KV tiles in a 2-stage cp.async
// pipeline, 16-byte chunks XOR-swizzled by row so ldmatrix reads are conflict-free):
// - Decode (kDecode): CTA = (KV split, kv head, sequence) of a sequence with one query token. Its
//   16 mma rows are the G ≤ 16 query heads of the group (padding rows hold q = 0), so every K/V
//   byte is loaded once per group. Warp w takes tokens [16w, 16w + 16) of each tile with its own
//   softmax state; the four are merged through shared memory at the end. With one split the CTA
//   writes `out`; otherwise it writes its normalised partial output and log2-sum-exp to the
//   workspace and DecodeCombineKernel merges the splits.
//   Bytes per (sequence, kv head): L × D × 2 × 2 of K/V (+ the q/out rows); FLOPs 4 × G × L × D.
// - Prefill: CTA = (64-row tile, kv head, sequence) of a sequence with more than one query token;
//   row r of the sequence is (position r / G, head r % G), so the K/V tile loaded for a CTA serves
//   64 / G positions of every head of the group. Warp w owns rows [16w, 16w + 16) against the
//   whole tile; causal masking per row; KV tiles up to the tile's last position.
//   FLOPs 4 × rows × (attended positions) × D.
// Thread fragments follow the PTX ISA's m16n8k16 layouts: a thread holds rows lane/4 and
// lane/4 + 8, columns 2(lane%4) and 2(lane%4) + 1 of each 8-wide accumulator tile.

#include "cuda/common.cuh"
#include "cuda/flash_attention.cuh"
#include "cuda/mma_utils.cuh"

namespace moeserve::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kStages = 2;
constexpr int kTileN = kFlashTileTokens;
constexpr float kLog2e = 1.4426950408889634f;

// Element offset of 16-byte chunk `chunk` of row `row` in a [rows][D] bf16 tile whose chunks are
// XOR-swizzled by row % 8 (ldmatrix reads 8 rows at one logical chunk: 8 distinct bank groups).
template <int D>
__device__ __forceinline__ int Swz(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

// The validated layout of one sequence, or false (and the error bit) when inconsistent.
struct SeqInfo {
  int q_begin, q_len, len;
};
__device__ __forceinline__ bool LoadSeq(const FlashAttentionParams& p, int s, SeqInfo* info) {
  const int q_begin = p.query_start_loc[s], q_end = p.query_start_loc[s + 1], len = p.seq_lens[s];
  const bool ok = q_begin >= 0 && q_end >= q_begin && q_end <= p.num_tokens && len >= q_end - q_begin &&
                  static_cast<int64_t>(len) <= p.max_blocks_per_seq << p.block_shift;
  if (!ok) {
    if (threadIdx.x == 0) RaiseError(p.error_flags, kErrAttentionLayout);
    return false;
  }
  *info = {q_begin, q_end - q_begin, len};
  return true;
}

template <int D, bool kDecode>
__global__ void __launch_bounds__(kThreads) FlashAttentionKernel(FlashAttentionParams p) {
  constexpr int kWarpsM = kDecode ? 1 : 4;
  constexpr int kWarpsN = 4 / kWarpsM;
  constexpr int kRows = 16 * kWarpsM;         // query rows per CTA
  constexpr int kWarpTok = kTileN / kWarpsN;  // KV tokens per warp per tile
  constexpr int kChunks = D / 8;              // 16-byte chunks per row
  constexpr int kNT = kWarpTok / 8;           // 8-token score tiles per warp
  constexpr int kDT = D / 8;                  // 8-wide output tiles
  extern __shared__ uint4 smem_u4[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_u4);
  bf16* sK = sQ + kRows * D;
  bf16* sV = sK + kStages * kTileN * D;

  const int s = blockIdx.z, g = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  SeqInfo seq;
  if (!LoadSeq(p, s, &seq)) return;
  const int G = p.num_heads / p.num_kv_heads;
  if (kDecode ? seq.q_len != 1 : (seq.q_len == 0 || (p.plan.run_decode && seq.q_len == 1))) return;
  const int rows_total = seq.q_len * G;
  const int row0 = kDecode ? 0 : blockIdx.x * kRows;
  // Rows or positions the grid (planned from max_query_len / max_seq_len) does not cover.
  const bool uncovered = kDecode ? static_cast<int64_t>(seq.len) > p.plan.decode_splits * p.plan.partition_tokens
                                 : static_cast<int64_t>(rows_total) > static_cast<int64_t>(gridDim.x) * kRows;
  if (uncovered) {
    if (threadIdx.x == 0) RaiseError(p.error_flags, kErrAttentionLayout);
    return;
  }
  if (row0 >= rows_total) return;
  const int ctx0 = seq.len - seq.q_len;  // position of query row 0
  int kv_begin = 0;
  int kv_end = ctx0 + (min(row0 + kRows, rows_total) - 1) / G + 1;
  if (kDecode) {
    kv_begin = blockIdx.x * static_cast<int>(p.plan.partition_tokens);
    if (kv_begin >= seq.len) return;
    kv_end = min(seq.len, kv_begin + static_cast<int>(p.plan.partition_tokens));
  }
  const int32_t* blocks = p.block_tables + static_cast<int64_t>(s) * p.max_blocks_per_seq;

  // Query rows -> sQ (zero for padding rows).
  for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, ch = c % kChunks, gr = row0 + r;
    bf16* dst = sQ + Swz<D>(r, ch);
    if (gr < rows_total) {
      const int64_t t = seq.q_begin + gr / G, h = static_cast<int64_t>(g) * G + gr % G;
      CpAsync16(dst, p.q + (t * p.num_heads + h) * D + ch * 8);
    } else {
      *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
    }
  }
  auto load_tile = [&](int stage, int start) {
    bf16* k_dst = sK + stage * kTileN * D;
    bf16* v_dst = sV + stage * kTileN * D;
    for (int c = threadIdx.x; c < kTileN * kChunks; c += kThreads) {
      const int j = c / kChunks, ch = c % kChunks, tok = start + j;
      const int off = Swz<D>(j, ch);
      if (tok < kv_end) {
        int32_t phys = blocks[tok >> p.block_shift];
        if (phys < 0 || phys >= p.num_blocks) {
          RaiseError(p.error_flags, kErrAttentionLayout);
          phys = 0;
        }
        const int64_t slot = (static_cast<int64_t>(phys) << p.block_shift) + (tok & ((1 << p.block_shift) - 1));
        const int64_t row = slot * p.num_kv_heads + g;
        CpAsync16(k_dst + off, p.k_cache + row * D + ch * 8);
        CpAsync16(v_dst + off, p.v_cache + row * D + ch * 8);
      } else {  // past the context: zeros, so masked p = 0 never meets a NaN value
        *reinterpret_cast<uint4*>(k_dst + off) = make_uint4(0, 0, 0, 0);
        *reinterpret_cast<uint4*>(v_dst + off) = make_uint4(0, 0, 0, 0);
      }
    }
  };

  const int wm = kDecode ? 0 : warp;  // row block of this warp
  const int wn = kDecode ? warp : 0;  // token slice of this warp
  // Causal limit (exclusive) of this thread's two rows; padding rows see the whole range.
  int limit[2];
  for (int i = 0; i < 2; ++i) {
    const int gr = row0 + wm * 16 + (lane >> 2) + 8 * i;
    limit[i] = gr < rows_total ? min(kv_end, ctx0 + gr / G + 1) : kv_end;
  }
  const float scale_log2 = p.scale * kLog2e;

  uint32_t qf[D / 16][4];
  float o[kDT][4];
#pragma unroll
  for (int i = 0; i < kDT; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};

  const int n_tiles = (kv_end - kv_begin + kTileN - 1) / kTileN;
  load_tile(0, kv_begin);
  CpAsyncCommit();
  for (int it = 0; it < n_tiles; ++it) {
    if (it + 1 < n_tiles) load_tile((it + 1) & 1, kv_begin + (it + 1) * kTileN);
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();
    if (it == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const int r = wm * 16 + (lane & 15);
        LdMatrixX4(qf[kk], sQ + Swz<D>(r, kk * 2 + (lane >> 4)));
      }
    }
    const bf16* k_t = sK + (it & 1) * kTileN * D;
    const bf16* v_t = sV + (it & 1) * kTileN * D;
    const int tok0 = kv_begin + it * kTileN + wn * kWarpTok;  // first token of this warp's slice

    // S = Q · Kᵀ over the warp's kWarpTok tokens.
    float sc[kNT][4];
#pragma unroll
    for (int n = 0; n < kNT; ++n) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int n2 = 0; n2 < kNT / 2; ++n2) {
        const int row = wn * kWarpTok + n2 * 16 + (lane & 7) + ((lane >> 4) << 3);
        uint32_t b[4];
        LdMatrixX4(b, k_t + Swz<D>(row, kk * 2 + ((lane >> 3) & 1)));
        Mma(sc[2 * n2], qf[kk], b[0], b[1]);
        Mma(sc[2 * n2 + 1], qf[kk], b[2], b[3]);
      }
    }
    // Mask, online softmax (log2 domain), P in bf16 A-fragments.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int tok = tok0 + n * 8 + ((lane & 3) << 1) + (e & 1);
        const float v = tok < limit[e >> 1] ? sc[n][e] * scale_log2 : -INFINITY;
        sc[n][e] = v;
        mx[e >> 1] = fmaxf(mx[e >> 1], v);
      }
    }
    float corr[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = QuadMax(mx[i]);
      const float m_new = fmaxf(m_run[i], mx[i]);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing valid yet
      corr[i] = exp2f(m_run[i] - m_use);
      m_run[i] = m_new;
      mx[i] = m_use;
    }
    float rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pe = exp2f(sc[n][e] - mx[e >> 1]);
        sc[n][e] = pe;
        rs[e >> 1] += pe;
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      rs[i] = QuadSum(rs[i]);
      l_run[i] = l_run[i] * corr[i] + rs[i];
    }
#pragma unroll
    for (int d = 0; d < kDT; ++d) {
      o[d][0] *= corr[0];
      o[d][1] *= corr[0];
      o[d][2] *= corr[1];
      o[d][3] *= corr[1];
    }
    // O += P · V.
#pragma unroll
    for (int kk = 0; kk < kWarpTok / 16; ++kk) {
      const uint32_t a[4] = {PackBf16(sc[2 * kk][0], sc[2 * kk][1]), PackBf16(sc[2 * kk][2], sc[2 * kk][3]),
                             PackBf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                             PackBf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
      const int row = wn * kWarpTok + kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
#pragma unroll
      for (int d2 = 0; d2 < kDT / 2; ++d2) {
        uint32_t b[4];
        LdMatrixX4Trans(b, v_t + Swz<D>(row, d2 * 2 + (lane >> 4)));
        Mma(o[2 * d2], a, b[0], b[1]);
        Mma(o[2 * d2 + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's load
  }
  CpAsyncWait<0>();

  const int col = (lane & 3) << 1;
  if constexpr (!kDecode) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int gr = row0 + wm * 16 + (lane >> 2) + 8 * i;
      if (gr >= rows_total) continue;
      const int64_t t = seq.q_begin + gr / G, h = static_cast<int64_t>(g) * G + gr % G;
      bf16* dst = p.out + (t * p.num_heads + h) * D;
      const float inv = l_run[i] > 0.0f ? 1.0f / l_run[i] : 0.0f;
#pragma unroll
      for (int d = 0; d < kDT; ++d) {
        *reinterpret_cast<__nv_bfloat162*>(dst + d * 8 + col) =
            __floats2bfloat162_rn(o[d][2 * i] * inv, o[d][2 * i + 1] * inv);
      }
    }
  } else {
    // Merge the four warps' states (tokens split across warps) through shared memory.
    float* red_o = reinterpret_cast<float*>(sK);  // [4][16][D]
    float* red_m = red_o + 4 * 16 * D;            // [4][16]
    float* red_l = red_m + 4 * 16;                // [4][16]
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = (lane >> 2) + 8 * i;
      float* dst = red_o + (warp * 16 + r) * D;
#pragma unroll
      for (int d = 0; d < kDT; ++d) {
        dst[d * 8 + col] = o[d][2 * i];
        dst[d * 8 + col + 1] = o[d][2 * i + 1];
      }
      if ((lane & 3) == 0) {
        red_m[warp * 16 + r] = m_run[i];
        red_l[warp * 16 + r] = l_run[i];
      }
    }
    __syncthreads();
    const int t = seq.q_begin;
    const int splits = p.plan.decode_splits;
    float* ws_o = static_cast<float*>(p.workspace);
    float* ws_lse = ws_o + (static_cast<int64_t>(p.num_seqs) * p.num_heads * splits * D + 63) / 64 * 64;
    for (int e = threadIdx.x; e < G * D; e += kThreads) {
      const int r = e / D, d = e % D;
      float m = -INFINITY;
#pragma unroll
      for (int w = 0; w < 4; ++w) m = fmaxf(m, red_m[w * 16 + r]);
      float num = 0.0f, den = 0.0f;
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const float mw = red_m[w * 16 + r];
        const float f = mw == -INFINITY ? 0.0f : exp2f(mw - m);
        num += f * red_o[(w * 16 + r) * D + d];
        den += f * red_l[w * 16 + r];
      }
      const int64_t h = static_cast<int64_t>(g) * G + r;
      const float val = den > 0.0f ? num / den : 0.0f;
      if (splits == 1) {
        p.out[(static_cast<int64_t>(t) * p.num_heads + h) * D + d] = FromFloat<bf16>(val);
      } else {
        const int64_t slot = (static_cast<int64_t>(s) * p.num_heads + h) * splits + blockIdx.x;
        ws_o[slot * D + d] = val;
        if (d == 0) ws_lse[slot] = den > 0.0f ? m + __log2f(den) : -INFINITY;
      }
    }
  }
}

// Merges the decode splits of one (sequence, head): out = Σ_i 2^(lse_i - M) o_i / Σ_i 2^(lse_i - M).
// One CTA of D threads per (sequence, head); thread d owns output dim d.
template <int D>
__global__ void __launch_bounds__(D) DecodeCombineKernel(FlashAttentionParams p) {
  const int s = blockIdx.x, h = blockIdx.y;
  const int q_begin = p.query_start_loc[s], q_end = p.query_start_loc[s + 1], len = p.seq_lens[s];
  if (q_end - q_begin != 1 || q_begin < 0 || q_end > p.num_tokens || len < 1 ||
      static_cast<int64_t>(len) > p.max_blocks_per_seq << p.block_shift) {
    return;  // not a decode sequence, or flagged by the attention kernel
  }
  const int splits = p.plan.decode_splits;
  const int n = static_cast<int>((len + p.plan.partition_tokens - 1) / p.plan.partition_tokens);
  if (n > splits) return;  // flagged by the attention kernel
  const float* ws_o = static_cast<const float*>(p.workspace);
  const float* ws_lse = ws_o + (static_cast<int64_t>(p.num_seqs) * p.num_heads * splits * D + 63) / 64 * 64;
  const int64_t base = (static_cast<int64_t>(s) * p.num_heads + h) * splits;
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = fmaxf(m, ws_lse[base + i]);
  float num = 0.0f, den = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float lse = ws_lse[base + i];
    const float f = lse == -INFINITY ? 0.0f : exp2f(lse - m);
    num += f * ws_o[(base + i) * D + threadIdx.x];
    den += f;
  }
  p.out[(static_cast<int64_t>(q_begin) * p.num_heads + h) * D + threadIdx.x] =
      FromFloat<bf16>(den > 0.0f ? num / den : 0.0f);
}

template <int D, bool kDecode>
constexpr int SmemBytes() {
  return ((kDecode ? 16 : 64) * D + 2 * kStages * kTileN * D) * 2;
}

template <int D, bool kDecode>
cudaError_t LaunchTiles(const FlashAttentionParams& p, dim3 grid, cudaStream_t stream) {
  constexpr int kSmem = SmemBytes<D, kDecode>();
  static_assert(!kDecode || 4 * 16 * (D + 2) * 4 <= 2 * kStages * kTileN * D * 2, "merge buffer fits");
  static const cudaError_t attr =
      cudaFuncSetAttribute(FlashAttentionKernel<D, kDecode>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attr != cudaSuccess) return attr;
  FlashAttentionKernel<D, kDecode><<<grid, kThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

template <int D>
cudaError_t LaunchForDim(const FlashAttentionParams& p, cudaStream_t stream) {
  const AttentionPlan& plan = p.plan;
  if (plan.run_decode) {
    const dim3 grid(plan.decode_splits, p.num_kv_heads, p.num_seqs);
    if (cudaError_t e = LaunchTiles<D, true>(p, grid, stream); e != cudaSuccess) return e;
  }
  if (plan.run_prefill) {
    const dim3 grid(static_cast<unsigned>(plan.prefill_row_tiles), p.num_kv_heads, p.num_seqs);
    if (cudaError_t e = LaunchTiles<D, false>(p, grid, stream); e != cudaSuccess) return e;
  }
  if (plan.run_decode && plan.decode_splits > 1) {
    DecodeCombineKernel<D><<<dim3(p.num_seqs, p.num_heads), D, 0, stream>>>(p);
    return cudaGetLastError();
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t LaunchFlashAttention(const FlashAttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0 || p.num_heads == 0) return cudaSuccess;
  const AttentionPlan& plan = p.plan;
  if (!plan.use_flash || p.block_shift < 0 || (1 << p.block_shift) > kMaxFlashBlockSize || p.num_seqs <= 0 ||
      p.num_seqs > 65535 || p.num_kv_heads <= 0 || p.num_kv_heads > 65535 || p.num_heads % p.num_kv_heads != 0 ||
      (plan.run_decode && p.num_heads / p.num_kv_heads > kMaxDecodeGroup) ||
      (plan.run_prefill && (plan.prefill_row_tiles <= 0 || plan.prefill_row_tiles > 0x7fffffff)) ||
      (plan.run_decode && (plan.partition_tokens <= 0 || plan.partition_tokens % kTileN != 0 ||
                           plan.decode_splits < 1 || plan.decode_splits > kMaxDecodeSplits)) ||
      (plan.decode_splits > 1 &&
       (p.workspace == nullptr || plan.workspace_bytes <= 0 || reinterpret_cast<uintptr_t>(p.workspace) % 16 != 0))) {
    return cudaErrorInvalidValue;
  }
  // 16-byte cp.async loads of q / cache rows, 4-byte bf16x2 stores of out.
  auto aligned = [](const void* ptr, uintptr_t a) { return reinterpret_cast<uintptr_t>(ptr) % a == 0; };
  if (!aligned(p.q, 16) || !aligned(p.k_cache, 16) || !aligned(p.v_cache, 16) || !aligned(p.out, 4)) {
    return cudaErrorInvalidValue;
  }
  switch (p.head_dim) {
    case 64: return LaunchForDim<64>(p, stream);
    case 128: return LaunchForDim<128>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace moeserve::kernels

// Paged attention, v1: one CTA of 128 threads (4 warps) per (token, head), online softmax over the
// sequence's KV blocks, fp32 accumulation.
//
// Per KV block: warp w computes the scores of keys w, w + 4, ... (each lane a strided slice of the
// kQk-capacity query held in shared memory, then a warp sum); after a barrier every thread derives
// the block max, thread j turns score j into p_j = exp(s_j - m), and thread i owns output dims
// i, i + 128, ... (< kV) and accumulates Σ_j p_j v_j[i] (coalesced value reads).
// Bytes per (token, head): context × (dim_qk + dim_v) × 2 of K/V (re-read per head of a GQA
// group: no sharing across heads in v1), FLOPs 2 × context × (dim_qk + dim_v).
// Not yet: split-KV for long contexts with few queries, sharing K/V across a GQA group or a
// prefill tile, tensor cores. Those are the next versions; this one is the correctness baseline.

#include "cuda/attention_dispatch.h"
#include "cuda/common.cuh"
#include "cuda/online_softmax.cuh"
#include "cuda/paged_attention.cuh"

namespace moeserve::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;

template <int kQk, int kV>
__global__ void __launch_bounds__(kThreads) PagedAttentionKernel(PagedAttentionParams p) {
  constexpr int kVPerThread = (kV + kThreads - 1) / kThreads;
  __shared__ float q_s[kQk];
  extern __shared__ float scores[];  // block_size
  const int t = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int dim_qk = p.dim_a + p.dim_b;
  bf16* out = p.out + (static_cast<int64_t>(t) * p.num_heads + h) * p.dim_v;

  // Sequence of token t: the last s with query_start_loc[s] <= t.
  int lo = 0, hi = p.num_seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (p.query_start_loc[mid] <= t)
      lo = mid;
    else
      hi = mid - 1;
  }
  const int s = lo;
  const int q_begin = p.query_start_loc[s], q_end = p.query_start_loc[s + 1];
  const int64_t n_ctx = static_cast<int64_t>(p.seq_lens[s]) - (q_end - q_begin) + (t - q_begin) + 1;
  if (t < q_begin || t >= q_end || n_ctx < 1 || n_ctx > p.max_blocks_per_seq * p.block_size) {
    if (threadIdx.x == 0) RaiseError(p.error_flags, kErrAttentionLayout);
    for (int i = threadIdx.x; i < p.dim_v; i += kThreads) out[i] = FromFloat<bf16>(0.0f);
    return;
  }
  const int kvh = h / (p.num_heads / p.num_kv_heads);
  const int64_t qrow = static_cast<int64_t>(t) * p.num_heads + h;
  for (int i = threadIdx.x; i < dim_qk; i += kThreads) {
    q_s[i] = i < p.dim_a ? ToFloat(p.q_a[qrow * p.dim_a + i]) : ToFloat(p.q_b[qrow * p.dim_b + i - p.dim_a]);
  }
  __syncthreads();

  float acc[kVPerThread];
#pragma unroll
  for (int r = 0; r < kVPerThread; ++r) acc[r] = 0.0f;
  OnlineSoftmax<SoftmaxBase::kE> softmax;
  bool bad = false;
  const int32_t* blocks = p.block_tables + static_cast<int64_t>(s) * p.max_blocks_per_seq;
  for (int64_t b = 0; b * p.block_size < n_ctx; ++b) {
    const int32_t phys = blocks[b];
    if (phys < 0 || phys >= p.num_blocks) {
      bad = true;
      break;
    }
    const int n = static_cast<int>(min(static_cast<int64_t>(p.block_size), n_ctx - b * p.block_size));
    const int64_t slot0 = static_cast<int64_t>(phys) * p.block_size;
    for (int j = warp; j < n; j += kWarps) {
      const bf16* k = p.k_cache + (slot0 + j) * p.k_slot_stride + kvh * p.k_head_stride;
      float dot = 0.0f;
      for (int i = lane; i < dim_qk; i += 32) dot += q_s[i] * ToFloat(k[i]);
      dot = WarpSum(dot);
      if (lane == 0) scores[j] = dot * p.scale;
    }
    __syncthreads();
    const float corr = SoftmaxBlockInShared<kThreads, kThreads>(scores, n, softmax);  // scores -> weights
#pragma unroll
    for (int r = 0; r < kVPerThread; ++r) {
      const int i = threadIdx.x + r * kThreads;
      if (i < p.dim_v) {
        float a = acc[r] * corr;
        for (int j = 0; j < n; ++j) {
          a += scores[j] * ToFloat(p.v_cache[(slot0 + j) * p.v_slot_stride + kvh * p.v_head_stride + i]);
        }
        acc[r] = a;
      }
    }
    __syncthreads();  // scores are rewritten by the next block
  }
  if (bad) {
    if (threadIdx.x == 0) RaiseError(p.error_flags, kErrAttentionLayout);
    for (int i = threadIdx.x; i < p.dim_v; i += kThreads) out[i] = FromFloat<bf16>(0.0f);
    return;
  }
  const float inv = softmax.InvSum();
#pragma unroll
  for (int r = 0; r < kVPerThread; ++r) {
    const int i = threadIdx.x + r * kThreads;
    if (i < p.dim_v) out[i] = FromFloat<bf16>(acc[r] * inv);
  }
}

template <int kCapacity>
cudaError_t Launch(const PagedAttentionParams& p, cudaStream_t stream) {
  constexpr AttentionCapacity c = kAttentionCapacities[kCapacity];
  const dim3 grid(p.num_tokens, p.num_heads);
  PagedAttentionKernel<c.max_qk_dim, c.max_v_dim><<<grid, kThreads, AttentionSharedBytes(p.block_size), stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchPagedAttention(const PagedAttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0 || p.num_heads == 0) return cudaSuccess;
  if (p.num_seqs <= 0 || p.num_kv_heads <= 0 || p.num_heads % p.num_kv_heads != 0 || p.block_size <= 0 ||
      p.block_size > kThreads || p.num_heads > 65535 || (p.dim_b > 0 && p.q_b == nullptr)) {
    return cudaErrorInvalidValue;
  }
  switch (ChooseAttentionCapacity(p.dim_a + p.dim_b, p.dim_v)) {
    case 0: return Launch<0>(p, stream);
    case 1: return Launch<1>(p, stream);
    case 2: return Launch<2>(p, stream);
    case 3: return Launch<3>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace moeserve::kernels

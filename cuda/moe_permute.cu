// MoE permutation: the batch's (token, slot) pairs sorted by expert on the device, in one CTA of
// 1024 threads (see moe_permute.cuh). Two passes over the T·(K+S) pairs (histogram, scatter) with
// warp-aggregated shared-memory atomics, so all tokens on one expert cost one atomic per warp;
// one block scan over ≤ 1024 experts in between. Bytes: 8·T·K read, 8·T·K + 4·rows written.
// With num_valid_tokens the histogram pass also counts the real tokens' pairs apart (one more
// match and atomic per warp) for expert_counts; the layout still covers every pair.
// A single CTA is enough: decode batches have a few thousand pairs at most, and a 64k-pair
// prefill costs 2 × 64 iterations of 1024 threads (a few µs), small next to its GEMMs.

#include "cuda/common.cuh"
#include "cuda/moe_permute.cuh"

namespace moeserve::kernels {
namespace {

constexpr int kThreads = 1024;

// Exclusive prefix sum over the CTA (thread order); *total gets the sum. REQUIRES: blockDim.x ==
// kThreads; called by every thread.
__device__ int BlockExclusiveScan(int v, int* total) {
  __shared__ int warp_sums[kThreads / 32];
  __shared__ int sum;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int inc = v;
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  if (lane == 31) warp_sums[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    const int s = warp_sums[lane];
    int si = s;
    for (int o = 1; o < 32; o <<= 1) {
      const int n = __shfl_up_sync(0xffffffffu, si, o);
      if (lane >= o) si += n;
    }
    warp_sums[lane] = si - s;
    if (lane == 31) sum = si;
  }
  __syncthreads();
  *total = sum;
  return inc - v + warp_sums[warp];
}

// The local expert of pair i = t·(K+S) + slot: topk_ids[t, slot] - expert_offset for a routed
// slot, routed experts + (slot - K) for a shared one; -1 for a padding lane, a routed id outside
// [0, routed_total) (*bad set) or one another rank holds.
__device__ __forceinline__ int PairExpert(const MoePermuteParams& p, int64_t i, bool* bad) {
  *bad = false;
  if (i >= p.pairs) return -1;
  const int routed = p.num_experts - p.num_shared;
  const int total = p.routed_total > 0 ? p.routed_total : routed;
  int e;
  if (p.num_shared == 0) {
    e = p.topk_ids[i];
  } else {
    const int slots = p.top_k + p.num_shared;
    const int64_t t = i / slots;
    const int slot = static_cast<int>(i - t * slots);
    if (slot >= p.top_k) return routed + (slot - p.top_k);
    e = p.topk_ids[t * p.top_k + slot];
  }
  if (e < 0 || e >= total) {
    *bad = true;
    return -1;
  }
  e -= p.expert_offset;
  return e >= 0 && e < routed ? e : -1;
}

__global__ void __launch_bounds__(kThreads) MoePermuteKernel(MoePermuteParams p) {
  __shared__ int count[kMoeMaxExperts];
  __shared__ int fill[kMoeMaxExperts];
  // Pairs of real tokens per expert when padding rows must not count; else `count` serves.
  __shared__ int valid_count[kMoeMaxExperts];
  const int tid = threadIdx.x, lane = tid & 31;
  const unsigned lanes_below = (1u << lane) - 1u;
  // Uniform over the CTA, so the extra warp-wide match below runs in every lane or in none.
  const bool split_valid = p.expert_counts != nullptr && p.num_valid_tokens != nullptr;
  int64_t valid_pairs = p.pairs;  // real tokens come first: pairs [0, n·(K+S))
  if (split_valid) {
    const int64_t slots = p.top_k + p.num_shared;
    const int64_t n = min(max(static_cast<int64_t>(*p.num_valid_tokens), int64_t{0}), p.pairs / slots);
    valid_pairs = n * slots;
  }
  if (tid < p.num_experts) {
    count[tid] = 0;
    valid_count[tid] = 0;
  }
  __syncthreads();
  // Every lane of every warp runs every iteration, so the warp-wide intrinsics see full warps.
  const int64_t n_round = (p.pairs + kThreads - 1) / kThreads * kThreads;
  for (int64_t i = tid; i < n_round; i += kThreads) {
    bool bad;
    const int e = PairExpert(p, i, &bad);
    if (bad) RaiseError(p.error_flags, p.error_bit);
    const unsigned peers = __match_any_sync(0xffffffffu, e);
    if (e >= 0 && (peers & lanes_below) == 0) atomicAdd(&count[e], __popc(peers));
    if (split_valid) {
      const int ev = i < valid_pairs ? e : -1;
      const unsigned vpeers = __match_any_sync(0xffffffffu, ev);
      if (ev >= 0 && (vpeers & lanes_below) == 0) atomicAdd(&valid_count[ev], __popc(vpeers));
    }
  }
  __syncthreads();

  const int c = tid < p.num_experts ? count[tid] : 0;
  const int padded = (c + kMoeTileM - 1) / kMoeTileM * kMoeTileM;
  int total_rows = 0;
  const int start = BlockExclusiveScan(padded, &total_rows);
  if (tid < p.num_experts) {
    fill[tid] = start;
    for (int t = start / kMoeTileM; t < (start + padded) / kMoeTileM; ++t) p.tile_expert[t] = tid;
    for (int r = start + c; r < start + padded; ++r) p.row_token[r] = -1;
    if (p.expert_counts != nullptr && tid < p.num_experts - p.num_shared) {
      p.expert_counts[tid] += split_valid ? valid_count[tid] : c;
    }
  }
  if (tid == 0) *p.num_m_tiles = total_rows / kMoeTileM;
  __syncthreads();

  for (int64_t i = tid; i < n_round; i += kThreads) {
    bool bad;
    const int e = PairExpert(p, i, &bad);
    const unsigned peers = __match_any_sync(0xffffffffu, e);
    const int leader = __ffs(peers) - 1;
    int base = 0;
    if (e >= 0 && lane == leader) base = atomicAdd(&fill[e], __popc(peers));
    base = __shfl_sync(0xffffffffu, base, leader);
    if (i < p.pairs) {
      if (e >= 0) {
        const int r = base + __popc(peers & lanes_below);
        p.row_token[r] = static_cast<int32_t>(i / (p.top_k + p.num_shared));
        p.pair_row[i] = r;
      } else {
        p.pair_row[i] = -1;
      }
    }
  }
}

}  // namespace

cudaError_t LaunchMoePermute(const MoePermuteParams& p, cudaStream_t stream) {
  if (p.num_experts <= 0 || p.num_experts > kMoeMaxExperts || p.top_k < 0 || p.num_shared < 0 ||
      p.num_shared >= p.num_experts || p.top_k + p.num_shared == 0 || p.pairs < 0 || p.expert_offset < 0 ||
      (p.routed_total > 0 && p.expert_offset + p.num_experts - p.num_shared > p.routed_total) ||
      p.pairs % (p.top_k + p.num_shared) != 0 || MoeMaxRows(p.pairs, p.num_experts) > 0x7fffffff) {
    return cudaErrorInvalidValue;
  }
  if (p.pairs == 0) return cudaSuccess;
  MoePermuteKernel<<<1, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace moeserve::kernels

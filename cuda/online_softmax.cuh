#ifndef MOESERVE_CUDA_ONLINE_SOFTMAX_CUH_
#define MOESERVE_CUDA_ONLINE_SOFTMAX_CUH_

// Softmax over a row of scores that arrive block by block ("online softmax", as in
// FlashAttention): the running maximum m and the running sum l of exp(s - m). A block whose
// maximum is above m moves m and rescales l, and every accumulator of weighted values, by
// exp(m_old - m_new) (0 on the first block, where m_old = -inf). The final weights are
// exp(s - m) / l. Used by the paged-attention kernels (paged_attention.cu, mla_attention.cu).
// OnlineSoftmax also compiles for the host (tests/cuda/online_softmax_test.cc checks it against a
// two-pass softmax); SoftmaxBlockInShared is device code.

#include <cuda_runtime.h>

#include <cmath>

namespace moeserve::kernels {

// The exponential of the scores: natural (scores as computed) or base 2 (scores pre-multiplied by
// log2 e, so that each exponential is one exp2 instruction).
enum class SoftmaxBase { kE, k2 };

// The state of one row. A thread may hold only its share of the row's sum (then reduce l across
// the sharing threads before InvSum).
template <SoftmaxBase kBase>
struct OnlineSoftmax {
  float m = -INFINITY;  // the largest score so far
  float l = 0.0f;       // Σ exp(s - m) over the scores so far

  static __host__ __device__ __forceinline__ float Exp(float x) {
#ifdef __CUDA_ARCH__
    if constexpr (kBase == SoftmaxBase::k2) {
      return exp2f(x);
    } else {
      return __expf(x);
    }
#else
    return kBase == SoftmaxBase::k2 ? std::exp2(x) : std::exp(x);
#endif
  }

  // Covers a new block whose largest score is `block_max`: moves m, rescales l, and returns the
  // factor by which every accumulator of earlier blocks must be multiplied.
  // REQUIRES: max(m, block_max) > -inf (the row has an unmasked score by now).
  __host__ __device__ __forceinline__ float Rescale(float block_max) {
    const float m_new = fmaxf(m, block_max);
    const float corr = Exp(m - m_new);
    m = m_new;
    l *= corr;
    return corr;
  }

  // The unnormalised weight exp(s - m) of a score of the current block (after its Rescale). Add
  // the weights to l.
  __host__ __device__ __forceinline__ float Weight(float s) const { return Exp(s - m); }

  // 1 / l, or 0 for a row with no weight (its output is zero).
  __host__ __device__ __forceinline__ float InvSum() const { return l > 0.0f ? 1.0f / l : 0.0f; }

  // log(Σ exp(s)) of the row in the base's domain (m + log l), -inf for a row with no weight: what
  // a split-KV combine weighs each split's normalised output by.
  __host__ __device__ __forceinline__ float LogSumExp() const {
    if (!(l > 0.0f)) return -INFINITY;
#ifdef __CUDA_ARCH__
    if constexpr (kBase == SoftmaxBase::k2) {
      return m + log2f(l);
    } else {
      return m + __logf(l);
    }
#else
    return m + (kBase == SoftmaxBase::k2 ? std::log2(l) : std::log(l));
#endif
  }
};

#ifdef __CUDACC__
// One block of a row whose n raw scores sit in shared memory, shared by a CTA of kThreads threads
// that each keep the same copy of `state`: moves the state over the block, replaces each score by
// its weight exp(s - m), adds the weights to l, and returns the factor for the accumulators.
// kMaxN bounds n at compile time (the weights are computed in an unrolled loop of
// ceil(kMaxN / kThreads) steps: a runtime-bounded loop costs the callers registers).
// REQUIRES: called by every thread of the CTA, the raw scores visible to all (after a barrier),
// 1 <= n <= kMaxN. On return the weights are visible to all.
template <int kThreads, int kMaxN, SoftmaxBase kBase>
__device__ __forceinline__ float SoftmaxBlockInShared(float* scores, int n, OnlineSoftmax<kBase>& state) {
  float block_max = -INFINITY;
  for (int j = 0; j < n; ++j) block_max = fmaxf(block_max, scores[j]);
  const float corr = state.Rescale(block_max);
  __syncthreads();  // everyone has read the raw scores
#pragma unroll
  for (int r = 0; r < (kMaxN + kThreads - 1) / kThreads; ++r) {
    const int j = threadIdx.x + r * kThreads;
    if (j < n) scores[j] = state.Weight(scores[j]);
  }
  __syncthreads();
  float sum = 0.0f;
  for (int j = 0; j < n; ++j) sum += scores[j];
  state.l += sum;
  return corr;
}
#endif  // __CUDACC__

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_ONLINE_SOFTMAX_CUH_

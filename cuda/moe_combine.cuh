#ifndef MOESERVE_CUDA_MOE_COMBINE_CUH_
#define MOESERVE_CUDA_MOE_COMBINE_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

// Un-permutes the experts' outputs: out[t] = Σ_k weights[t, k] · expert_out[rows[t, k]]
// + Σ_s expert_out[rows[t, top_k + s]] (+ shared_out[t]), with expert_out [N, dim] the grouped
// GEMM results in expert-sorted order and rows [T, top_k + num_shared] the sorted row of each
// (token, slot) pair (< 0: the pair contributes nothing); the num_shared fused shared-expert slots
// have weight 1. Deterministic (no atomics), fp32 accumulation. shared_out may alias out.
struct MoeCombineParams {
  const __nv_bfloat16* expert_out = nullptr;
  const int32_t* rows = nullptr;
  const float* weights = nullptr;
  const __nv_bfloat16* shared_out = nullptr;  // [T, dim] or null
  __nv_bfloat16* out = nullptr;
  int64_t tokens = 0;
  int top_k = 0;       // routed slots: weights [T, top_k]
  int num_shared = 0;  // shared-expert slots after them in rows, weight 1
  int64_t dim = 0;
};

cudaError_t LaunchMoeCombine(const MoeCombineParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_MOE_COMBINE_CUH_

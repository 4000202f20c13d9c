#ifndef MOESERVE_CUDA_MOE_ROUTE_CUH_
#define MOESERVE_CUDA_MOE_ROUTE_CUH_

#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

enum class MoeScoreFn : int { kSoftmax = 0, kSigmoid = 1 };
enum class MoeSelect : int { kGreedy = 0, kGroupLimitedGreedy = 1, kNoAuxTc = 2 };

// Expert choice per token with the semantics of the CPU backend's MoeRoute (Hugging Face
// Mixtral / DeepSeek-V2 / DeepSeek-V3): scores = softmax|sigmoid(logits); choice = scores
// (+ correction_bias for kNoAuxTc); groups ranked by max (kGroupLimitedGreedy) or top-2 sum
// (kNoAuxTc), topk_group kept; top_k experts by choice, ties to the lower index; weights =
// scores[ids], renormalised (sum + 1e-20) if norm_topk_prob, times routed_scaling_factor.
// REQUIRES (checked by the caller): parameters valid as for Backend::MoeRoute.
struct MoeRouteParams {
  const void* logits = nullptr;  // [T, E], fp32 or bf16 (logits_bf16)
  bool logits_bf16 = false;
  const float* correction_bias = nullptr;  // [E], kNoAuxTc only
  int32_t* topk_ids = nullptr;             // [T, top_k]
  float* topk_weights = nullptr;           // [T, top_k]
  int64_t tokens = 0;
  int num_experts = 0;
  int top_k = 0;
  MoeScoreFn scoring = MoeScoreFn::kSoftmax;
  MoeSelect method = MoeSelect::kGreedy;
  int n_group = 1;
  int topk_group = 1;
  bool norm_topk_prob = true;
  float routed_scaling_factor = 1.0f;
};

// Dynamic shared memory of one routing CTA (host-testable sizing).
constexpr int64_t MoeRouteSharedBytes(int num_experts, int n_group) {
  return static_cast<int64_t>(num_experts) * (2 * 4 + 2) + static_cast<int64_t>(n_group) * 8 + 16;
}

cudaError_t LaunchMoeRoute(const MoeRouteParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_MOE_ROUTE_CUH_

// MoE of the CUDA backend: expert routing and the expert FFNs.

#include <cstring>

#include "cuda/moe_combine.cuh"
#include "cuda/moe_route.cuh"
#include "server/backend/cuda/cuda_backend.h"
#include "server/backend/cuda/cuda_checks.h"
#include "server/backend/cuda/cuda_launch.h"
#include "server/backend/cuda/moe_plan.h"
#include "server/common/status_macros.h"

namespace moeserve {

using cuda_launch::bf16;
using cuda_launch::Flags;
using cuda_launch::Launched;
using cuda_launch::LayoutParams;
using cuda_launch::Ptr;
namespace k = ::moeserve::kernels;

absl::Status CudaBackend::MoeRoute(const Tensor& router_logits, const Tensor& correction_bias,
                                   const MoeRoutingParams& params, const Tensor& topk_ids,
                                   const Tensor& topk_weights) {
  RETURN_IF_ERROR(cuda_checks::CheckMoeRoute(router_logits, correction_bias, params, topk_ids,
                                             topk_weights));
  k::MoeRouteParams p;
  p.logits = router_logits.data();
  p.logits_bf16 = router_logits.dtype() == DType::kBF16;
  p.correction_bias =
      params.method == MoeTopkMethod::kNoAuxTc ? Ptr<const float>(correction_bias) : nullptr;
  p.topk_ids = Ptr<int32_t>(topk_ids);
  p.topk_weights = Ptr<float>(topk_weights);
  p.tokens = router_logits.dim(0);
  p.num_experts = static_cast<int>(router_logits.dim(1));
  p.top_k = params.top_k;
  p.scoring = params.scoring == MoeScoring::kSoftmax ? k::MoeScoreFn::kSoftmax
                                                     : k::MoeScoreFn::kSigmoid;
  switch (params.method) {
    case MoeTopkMethod::kGreedy: p.method = k::MoeSelect::kGreedy; break;
    case MoeTopkMethod::kGroupLimitedGreedy: p.method = k::MoeSelect::kGroupLimitedGreedy; break;
    case MoeTopkMethod::kNoAuxTc: p.method = k::MoeSelect::kNoAuxTc; break;
  }
  const bool grouped = params.method != MoeTopkMethod::kGreedy;
  p.n_group = grouped ? params.n_group : 1;
  p.topk_group = grouped ? params.topk_group : 1;
  p.norm_topk_prob = params.norm_topk_prob;
  p.routed_scaling_factor = params.routed_scaling_factor;
  return Launched(k::LaunchMoeRoute(p, stream_), "MoeRoute");
}

// v1: the expert ids come to the host (one stream sync), the pairs are sorted by expert there
// (moe_plan.h), and each active expert runs two cuBLAS GEMMs over its gathered rows.
absl::Status CudaBackend::MoeExperts(const Tensor& x, const Tensor& topk_ids,
                                     const Tensor& topk_weights, const Tensor& gate_up,
                                     const Tensor& down, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckMoeExperts(x, topk_ids, topk_weights, gate_up, down, out));
  const int64_t T = x.dim(0), d = x.dim(1), K = topk_ids.dim(1), E = gate_up.dim(0);
  const int64_t I2 = gate_up.dim(1), I = I2 / 2, N = T * K;
  if (T == 0) return absl::OkStatus();
  if (K == 0 || d == 0) return Zero(out);
  moe_ids_host_.resize(N);
  RETURN_IF_ERROR(CopyToHost(topk_ids, absl::MakeSpan(reinterpret_cast<uint8_t*>(moe_ids_host_.data()),
                                                      N * sizeof(int32_t))));
  ASSIGN_OR_RETURN(MoePlan plan, BuildMoePlan(moe_ids_host_, T, K, E));
  moe_index_host_.resize(2 * N);
  std::memcpy(moe_index_host_.data(), plan.row_token.data(), N * sizeof(int32_t));
  std::memcpy(moe_index_host_.data() + N, plan.pair_row.data(), N * sizeof(int32_t));
  ASSIGN_OR_RETURN(Tensor index, Allocate(DType::kI32, {2 * N}));
  RETURN_IF_ERROR(CopyFromHost(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(moe_index_host_.data()),
                                                   2 * N * sizeof(int32_t)),
                               index));
  ASSIGN_OR_RETURN(Tensor xe, Allocate(DType::kBF16, {N, d}));
  ASSIGN_OR_RETURN(Tensor h, Allocate(DType::kBF16, {N, I2}));
  ASSIGN_OR_RETURN(Tensor act, Allocate(DType::kBF16, {N, I}));
  ASSIGN_OR_RETURN(Tensor ye, Allocate(DType::kBF16, {N, d}));
  RETURN_IF_ERROR(GatherRows(x, index.Slice(0, N), xe));
  const auto* xe_p = Ptr<const bf16>(xe);
  const auto* gu_p = Ptr<const bf16>(gate_up);
  const auto* dn_p = Ptr<const bf16>(down);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = plan.expert_start[e], n = plan.expert_start[e + 1] - r0;
    if (n == 0) continue;
    RETURN_IF_ERROR(GemmXWt(xe_p + r0 * d, d, gu_p + e * I2 * d, d, Ptr<bf16>(h) + r0 * I2, I2, n,
                            I2, d));
  }
  RETURN_IF_ERROR(SiluMul(h, act));
  const auto* act_p = Ptr<const bf16>(act);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = plan.expert_start[e], n = plan.expert_start[e + 1] - r0;
    if (n == 0) continue;
    RETURN_IF_ERROR(GemmXWt(act_p + r0 * I, I, dn_p + e * d * I, I, Ptr<bf16>(ye) + r0 * d, d, n,
                            d, I));
  }
  k::MoeCombineParams c;
  c.expert_out = Ptr<const bf16>(ye);
  c.rows = Ptr<const int32_t>(index) + N;
  c.weights = Ptr<const float>(topk_weights);
  c.out = Ptr<bf16>(out);
  c.tokens = T;
  c.top_k = static_cast<int>(K);
  c.dim = d;
  return Launched(k::LaunchMoeCombine(c, stream_), "MoeExperts");
}

}  // namespace moeserve

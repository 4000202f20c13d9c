// Mixture-of-experts routing and expert computation.
//
// MoeExperts' extras: the shared experts' output is the starting value of the sum (so the
// reference adds it in fp32 like the CUDA combine), expert_counts accumulates the histogram the
// sort builds anyway (over the first num_valid_tokens rows only), and num_shared_experts adds S slots of weight 1 to
// every token, sorted like the routed pairs (the CUDA permutation does the same).
//
// MoeRoute follows Hugging Face transformers (Mixtral, DeepSeek-V2 TopkRouter, DeepSeek-V3
// TopkRouter) step by step; see MoeRoute below. MoeExperts groups the batch's (token, slot) pairs by
// expert with a counting sort and runs each active expert as two GEMMs over just its tokens, so
// experts nobody chose cost nothing.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/cpu/cpu_internal.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

using cpu::Expect;
using cpu::OpError;

// Picks the `k` best of `n` candidates by `score` among those with allowed[i], highest first; ties
// go to the lower index. Never returns an index outside [0, n) (NaN scores are simply never
// "better").
void TopK(const float* score, const uint8_t* allowed, int64_t n, int64_t k, int32_t* picked, uint8_t* taken) {
  std::fill(taken, taken + n, 0);
  for (int64_t r = 0; r < k; ++r) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; ++i) {
      if (!allowed[i] || taken[i]) continue;
      if (best < 0 || score[i] > score[best]) best = i;
    }
    picked[r] = static_cast<int32_t>(best);
    taken[best] = 1;
  }
}

}  // namespace

// Per token, as Hugging Face does it:
//   scores  = softmax(logits) or sigmoid(logits)
//   choice  = scores + correction_bias (kNoAuxTc) or scores
//   groups  (kGroupLimitedGreedy: max of choice per group; kNoAuxTc: sum of the top-2 choices per
//            group); the topk_group best groups stay eligible, the others are masked out
//   ids     = top_k eligible experts by choice, in descending order of choice
//   weights = scores[ids] (the unbiased score), / (Σ weights + 1e-20) if norm_topk_prob,
//             then × routed_scaling_factor.
// The 1e-20 is DeepSeek-V3's; Mixtral divides by the plain sum, which differs only when the sum is
// within 1e-20 of zero (never, for softmax).
absl::Status CpuBackend::MoeRoute(const Tensor& router_logits, const Tensor& correction_bias,
                                  const MoeRoutingParams& params, const Tensor& topk_ids, const Tensor& topk_weights) {
  constexpr absl::string_view kOp = "MoeRoute";
  RETURN_IF_ERROR(Expect(kOp, "router_logits", router_logits, DType::kF32, {"T", "E"}));
  const int64_t T = router_logits.dim(0), E = router_logits.dim(1);
  if (E == 0) return OpError(kOp, "router_logits has no experts");
  RETURN_IF_ERROR(CheckMoeRoutingParams(params, E));
  const int64_t K = params.top_k;
  const bool use_bias = params.method == MoeTopkMethod::kNoAuxTc;
  if (use_bias) {
    RETURN_IF_ERROR(Expect(kOp, "correction_bias", correction_bias, DType::kF32, {E}));
  } else if (correction_bias.defined()) {
    return OpError(kOp, "correction_bias is only used by the noaux_tc method; pass an empty tensor");
  }
  RETURN_IF_ERROR(Expect(kOp, "topk_ids", topk_ids, DType::kI32, {T, K}));
  RETURN_IF_ERROR(Expect(kOp, "topk_weights", topk_weights, DType::kF32, {T, K}));

  const float* logits = router_logits.data_as<float>();
  const float* bias = use_bias ? correction_bias.data_as<float>() : nullptr;
  int32_t* ids = topk_ids.data_as<int32_t>();
  float* weights = topk_weights.data_as<float>();
  const bool grouped = params.method != MoeTopkMethod::kGreedy;
  const int64_t G = grouped ? params.n_group : 1, per_group = E / G;
  pool_.ParallelFor(T, cpu::RowGrain(E * 8), [&](int64_t b, int64_t e) {
    std::vector<float> scores(E), choice(E), group_score(G);
    std::vector<uint8_t> allowed(E), taken(E), group_all(G, 1), group_taken(G);
    std::vector<int32_t> groups(G);
    for (int64_t t = b; t < e; ++t) {
      const float* lg = logits + t * E;
      if (params.scoring == MoeScoring::kSoftmax) {
        float mx = lg[0];
        for (int64_t i = 1; i < E; ++i) mx = std::max(mx, lg[i]);
        double sum = 0.0;
        for (int64_t i = 0; i < E; ++i) {
          scores[i] = std::exp(lg[i] - mx);
          sum += scores[i];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t i = 0; i < E; ++i) scores[i] *= inv;
      } else {
        for (int64_t i = 0; i < E; ++i) scores[i] = 1.0f / (1.0f + std::exp(-lg[i]));
      }
      for (int64_t i = 0; i < E; ++i) choice[i] = bias != nullptr ? scores[i] + bias[i] : scores[i];

      if (params.method == MoeTopkMethod::kGreedy) {
        std::fill(allowed.begin(), allowed.end(), 1);
      } else {
        for (int64_t g = 0; g < G; ++g) {
          const float* c = choice.data() + g * per_group;
          if (params.method == MoeTopkMethod::kGroupLimitedGreedy) {
            group_score[g] = *std::max_element(c, c + per_group);
          } else {
            // Sum of the group's two best (ties do not matter for a sum).
            float m1 = -INFINITY, m2 = -INFINITY;
            for (int64_t i = 0; i < per_group; ++i) {
              if (c[i] > m1) {
                m2 = m1;
                m1 = c[i];
              } else if (c[i] > m2) {
                m2 = c[i];
              }
            }
            group_score[g] = m1 + m2;
          }
        }
        TopK(group_score.data(), group_all.data(), G, params.topk_group, groups.data(), group_taken.data());
        std::fill(allowed.begin(), allowed.end(), 0);
        for (int64_t r = 0; r < params.topk_group; ++r) {
          std::fill(allowed.begin() + groups[r] * per_group, allowed.begin() + (groups[r] + 1) * per_group, 1);
        }
      }
      int32_t* id = ids + t * K;
      float* w = weights + t * K;
      TopK(choice.data(), allowed.data(), E, K, id, taken.data());
      for (int64_t r = 0; r < K; ++r) w[r] = scores[id[r]];
      if (params.norm_topk_prob) {
        float sum = 0.0f;
        for (int64_t r = 0; r < K; ++r) sum += w[r];
        const float denom = sum + 1e-20f;
        for (int64_t r = 0; r < K; ++r) w[r] /= denom;
      }
      for (int64_t r = 0; r < K; ++r) w[r] *= params.routed_scaling_factor;
    }
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::MoeExperts(const Tensor& x, const Tensor& topk_ids, const Tensor& topk_weights,
                                    const Tensor& gate_up, const Tensor& down, const Tensor& out,
                                    const MoeExpertsExtras& extras) {
  constexpr absl::string_view kOp = "MoeExperts";
  RETURN_IF_ERROR(Expect(kOp, "x", x, DType::kF32, {"T", "d"}));
  const int64_t T = x.dim(0), d = x.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "topk_ids", topk_ids, DType::kI32, {T, "k"}));
  const int64_t K = topk_ids.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "topk_weights", topk_weights, DType::kF32, {T, K}));
  RETURN_IF_ERROR(cpu::ExpectWeight(kOp, "gate_up", gate_up, {"E", "2I", d}));
  const int64_t E = gate_up.dim(0), I2 = gate_up.dim(1);
  if (I2 % 2 != 0) {
    return OpError(kOp, absl::StrCat("gate_up has shape ", gate_up.shape().ToString(), ", expected [E, 2I, ", d,
                                     "] with an even 2I"));
  }
  const int64_t I = I2 / 2;
  RETURN_IF_ERROR(cpu::ExpectWeight(kOp, "down", down, {E, d, I}));
  RETURN_IF_ERROR(Expect(kOp, "out", out, DType::kF32, {T, d}));
  if (extras.shared_out.defined()) {
    RETURN_IF_ERROR(Expect(kOp, "shared_out", extras.shared_out, DType::kF32, {T, d}));
  }
  const int64_t S = extras.num_shared_experts;
  if (S < 0 || S >= E) {
    return OpError(
        kOp, absl::StrCat("num_shared_experts ", S, " is outside [0, ", E, ") (the last S of the ", E, " experts)"));
  }
  const int64_t routed = E - S;
  const int64_t total_routed = extras.num_routed_experts > 0 ? extras.num_routed_experts : routed;
  const int64_t first = extras.first_expert;
  if (first < 0 || first + routed > total_routed) {
    return OpError(kOp, absl::StrCat("experts [", first, ", ", first + routed, ") are outside the model's ",
                                     total_routed, " routed experts"));
  }
  if (extras.expert_counts.defined()) {
    RETURN_IF_ERROR(Expect(kOp, "expert_counts", extras.expert_counts, DType::kI64, {routed}));
  }
  if (extras.num_valid_tokens.defined()) {
    RETURN_IF_ERROR(Expect(kOp, "num_valid_tokens", extras.num_valid_tokens, DType::kI32, {1}));
  }
  const int32_t* ids = topk_ids.data_as<int32_t>();
  for (int64_t i = 0; i < T * K; ++i) {
    if (ids[i] < 0 || ids[i] >= total_routed) {
      return OpError(
          kOp, absl::StrCat("topk_ids[", i / K, ", ", i % K, "] = ", ids[i], " is outside [0, ", total_routed, ")"));
    }
  }

  // Pair p = t·(K+S) + slot: slots [0, K) are the routed choices, [K, K+S) the shared experts
  // (weight 1). Counting sort of the pairs by local expert (-1: another rank's expert, skipped);
  // within an expert, by token.
  const int64_t slots = K + S;
  const float* wts = topk_weights.data_as<float>();
  auto pair_expert = [&](int64_t p) -> int64_t {
    const int64_t t = p / slots, j = p % slots;
    if (j >= K) return routed + (j - K);
    const int64_t local = ids[t * K + j] - first;
    return local >= 0 && local < routed ? local : -1;
  };
  auto pair_weight = [&](int64_t p) -> float {
    const int64_t t = p / slots, j = p % slots;
    return j < K ? wts[t * K + j] : 1.0f;
  };
  std::vector<int64_t> start(E + 1, 0);
  for (int64_t p = 0; p < T * slots; ++p) {
    if (const int64_t e = pair_expert(p); e >= 0) ++start[e + 1];
  }
  int64_t max_rows = 0;
  if (extras.expert_counts.defined()) {
    // Padding rows [n, T) are computed but not counted (the CUDA permutation does the same).
    const int64_t n = extras.num_valid_tokens.defined()
                          ? std::clamp<int64_t>(extras.num_valid_tokens.data_as<int32_t>()[0], 0, T)
                          : T;
    int64_t* counts = extras.expert_counts.data_as<int64_t>();
    if (n == T) {
      for (int64_t e = 0; e < routed; ++e) counts[e] += start[e + 1];
    } else {
      for (int64_t p = 0; p < n * slots; ++p) {
        const int64_t e = pair_expert(p);
        if (e >= 0 && e < routed) ++counts[e];
      }
    }
  }
  for (int64_t e = 0; e < E; ++e) {
    max_rows = std::max(max_rows, start[e + 1]);
    start[e + 1] += start[e];
  }
  moe_index_scratch_.resize(T * slots);
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t p = 0; p < T * slots; ++p) {
      if (const int64_t e = pair_expert(p); e >= 0) moe_index_scratch_[fill[e]++] = static_cast<int32_t>(p);
    }
  }
  // Scratch: gathered inputs [n, d], gate|up [n, 2I], activations [n, I], expert outputs [n, d].
  moe_scratch_.resize(max_rows * (d + I2 + I + d));
  float* xe = moe_scratch_.data();
  float* h = xe + max_rows * d;
  float* act = h + max_rows * I2;
  float* ye = act + max_rows * I;

  const float* xp = x.data_as<float>();
  const cpu::WeightType gu_type = cpu::WeightTypeOf(gate_up.dtype());
  const cpu::WeightType dn_type = cpu::WeightTypeOf(down.dtype());
  const char* gu = static_cast<const char*>(gate_up.data());
  const char* dn = static_cast<const char*>(down.data());
  const int64_t gu_expert_bytes = I2 * d * static_cast<int64_t>(DTypeSize(gate_up.dtype()));
  const int64_t dn_expert_bytes = d * I * static_cast<int64_t>(DTypeSize(down.dtype()));
  const cpu::CpuKernels& kernels = cpu::Kernels();
  float* op = out.data_as<float>();
  if (extras.shared_out.defined()) {
    if (extras.shared_out.data() != out.data()) {
      std::memcpy(op, extras.shared_out.data(), T * d * sizeof(float));
    }
  } else {
    std::memset(op, 0, T * d * sizeof(float));
  }
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = start[e + 1] - start[e];
    if (n == 0) continue;
    const int32_t* pairs = moe_index_scratch_.data() + start[e];
    for (int64_t r = 0; r < n; ++r) {
      std::memcpy(xe + r * d, xp + (pairs[r] / slots) * d, d * sizeof(float));
    }
    cpu::GemmXWt(&pool_, n, I2, d, xe, d, gu_type, gu + e * gu_expert_bytes, d, nullptr, h, I2, options_.exact_gemm);
    for (int64_t r = 0; r < n; ++r) kernels.silu_mul_row(h + r * I2, h + r * I2 + I, I, act + r * I);
    cpu::GemmXWt(&pool_, n, d, I, act, I, dn_type, dn + e * dn_expert_bytes, I, nullptr, ye, d, options_.exact_gemm);
    for (int64_t r = 0; r < n; ++r) {
      kernels.axpy_row(pair_weight(pairs[r]), ye + r * d, d, op + (pairs[r] / slots) * d);
    }
  }
  return absl::OkStatus();
}

}  // namespace moeserve

#include "server/backend/cuda/cuda_checks.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "cuda/attention_dispatch.h"
#include "cuda/mla_plan.h"
#include "cuda/moe_layout.h"
#include "server/backend/op_checks.h"
#include "server/common/status_macros.h"

namespace moeserve::cuda_checks {
namespace {

absl::Status CheckBlockSize(absl::string_view op, int64_t BS) {
  if (BS <= 0 || BS > kMaxAttentionBlockSize) {
    return OpError(op, absl::StrCat("cache block size ", BS, " is outside [1, ", kMaxAttentionBlockSize,
                                    "] (CUDA attention kernel)"));
  }
  return absl::OkStatus();
}

absl::Status CheckHeadDims(absl::string_view op, int64_t qk, int64_t v) {
  if (kernels::ChooseAttentionCapacity(qk, v) < 0) {
    return OpError(op, absl::StrCat("head dims q·k ", qk, " / v ", v,
                                    " are not supported by the CUDA attention kernel (max 576 / 512)"));
  }
  return absl::OkStatus();
}

}  // namespace

DType WeightDType(const Shape& shape) { return shape.rank() <= 1 ? DType::kF32 : DType::kBF16; }

absl::Status CheckEmbedding(const Tensor& table, const Tensor& ids, const Tensor& out) {
  constexpr absl::string_view kOp = "Embedding";
  RETURN_IF_ERROR(Expect(kOp, "table", table, kAct, {"V", "d"}));
  RETURN_IF_ERROR(Expect(kOp, "ids", ids, DType::kI32, {"T"}));
  return Expect(kOp, "out", out, kAct, {ids.dim(0), table.dim(1)});
}

absl::Status CheckLinear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) {
  constexpr absl::string_view kOp = "Linear";
  RETURN_IF_ERROR(Expect(kOp, "x", x, kAct, {"T", "in"}));
  const int64_t T = x.dim(0), in = x.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "w", w, DType::kBF16, {"out", in}));
  const int64_t n = w.dim(0);
  if (bias.defined()) RETURN_IF_ERROR(Expect(kOp, "bias", bias, DType::kF32, {n}));
  if (out.defined() && out.dtype() == DType::kF32) {
    return Expect(kOp, "out", out, DType::kF32, {T, n});
  }
  return Expect(kOp, "out", out, kAct, {T, n});
}

absl::Status CheckHeadwiseLinear(const Tensor& x, const Tensor& w, const Tensor& out) {
  constexpr absl::string_view kOp = "HeadwiseLinear";
  RETURN_IF_ERROR(Expect(kOp, "x", x, kAct, {"T", "H", "in"}));
  const int64_t T = x.dim(0), H = x.dim(1), in = x.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "w", w, DType::kBF16, {H, "out", in}));
  return Expect(kOp, "out", out, kAct, {T, H, w.dim(1)});
}

absl::Status CheckRmsNorm(const Tensor& x, const Tensor& w, const Tensor& out) {
  constexpr absl::string_view kOp = "RmsNorm";
  RETURN_IF_ERROR(Expect(kOp, "x", x, kAct, {"T", "d"}));
  RETURN_IF_ERROR(Expect(kOp, "w", w, DType::kF32, {x.dim(1)}));
  return Expect(kOp, "out", out, kAct, {x.dim(0), x.dim(1)});
}

absl::Status CheckAddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& w, const Tensor& out) {
  constexpr absl::string_view kOp = "AddRmsNorm";
  RETURN_IF_ERROR(Expect(kOp, "x", x, kAct, {"T", "d"}));
  const int64_t T = x.dim(0), d = x.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "residual", residual, kAct, {T, d}));
  RETURN_IF_ERROR(Expect(kOp, "w", w, DType::kF32, {d}));
  return Expect(kOp, "out", out, kAct, {T, d});
}

absl::Status CheckAdd(const Tensor& a, const Tensor& b, const Tensor& out) {
  constexpr absl::string_view kOp = "Add";
  if (!a.defined()) return OpError(kOp, "a is missing");
  if (a.dtype() != kAct) {
    return OpError(kOp, absl::StrCat("a has dtype ", DTypeStr(a.dtype()), ", expected bf16"));
  }
  for (const auto& [name, t] : {std::pair<absl::string_view, const Tensor*>{"b", &b}, {"out", &out}}) {
    if (!t->defined() || t->dtype() != kAct || t->shape() != a.shape()) {
      return OpError(
          kOp, absl::StrCat(name, " is ", t->defined() ? t->DebugString() : "missing", ", expected ", a.DebugString()));
    }
  }
  if (a.numel() > 0 && (a.data() == nullptr || b.data() == nullptr || out.data() == nullptr)) {
    return OpError(kOp, "operand has no memory");
  }
  return absl::OkStatus();
}

absl::Status CheckRope(const Tensor& x, const Tensor& positions, const Tensor& cos_sin, int32_t rotary_dim) {
  constexpr absl::string_view kOp = "Rope";
  RETURN_IF_ERROR(Expect(kOp, "x", x, kAct, {"T", "H", "D"}));
  const int64_t T = x.dim(0), D = x.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "positions", positions, DType::kI32, {T}));
  if (rotary_dim <= 0 || rotary_dim % 2 != 0 || rotary_dim > D) {
    return OpError(kOp, absl::StrCat("rotary_dim ", rotary_dim, " must be even and in (0, ", D, "]"));
  }
  return Expect(kOp, "cos_sin", cos_sin, DType::kF32, {"max_position", rotary_dim});
}

absl::Status CheckSiluMul(const Tensor& gate_up, const Tensor& out) {
  constexpr absl::string_view kOp = "SiluMul";
  RETURN_IF_ERROR(Expect(kOp, "gate_up", gate_up, kAct, {"T", "2I"}));
  if (gate_up.dim(1) % 2 != 0) {
    return OpError(kOp, absl::StrCat("gate_up has shape ", gate_up.shape().ToString(),
                                     ", expected an even last dimension [T, 2I]"));
  }
  return Expect(kOp, "out", out, kAct, {gate_up.dim(0), gate_up.dim(1) / 2});
}

absl::Status CheckGatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) {
  constexpr absl::string_view kOp = "GatherRows";
  RETURN_IF_ERROR(Expect(kOp, "x", x, kAct, {"T", "d"}));
  RETURN_IF_ERROR(Expect(kOp, "indices", indices, DType::kI32, {"n"}));
  return Expect(kOp, "out", out, kAct, {indices.dim(0), x.dim(1)});
}

absl::Status CheckWriteKvCache(const Tensor& k, const Tensor& v, const AttentionMetadata& meta, const Tensor& k_cache,
                               const Tensor& v_cache) {
  constexpr absl::string_view kOp = "WriteKvCache";
  RETURN_IF_ERROR(Expect(kOp, "k", k, kAct, {"T", "Hkv", "D"}));
  const int64_t T = k.dim(0), Hkv = k.dim(1), D = k.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "v", v, kAct, {T, Hkv, "Dv"}));
  RETURN_IF_ERROR(Expect(kOp, "k_cache", k_cache, kAct, {"NB", "BS", Hkv, D}));
  const int64_t NB = k_cache.dim(0), BS = k_cache.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "v_cache", v_cache, kAct, {NB, BS, Hkv, v.dim(2)}));
  RETURN_IF_ERROR(Expect(kOp, "meta.slot_mapping", meta.slot_mapping, DType::kI32, {T}));
  if (meta.block_size != BS) {
    return OpError(kOp, absl::StrCat("meta.block_size ", meta.block_size, " differs from the cache's block size ", BS));
  }
  return absl::OkStatus();
}

absl::Status CheckRopeWriteKvCache(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                                   const Tensor& cos_sin, int32_t rotary_dim, const AttentionMetadata& meta,
                                   const Tensor& k_cache, const Tensor& v_cache) {
  return CheckRopeWriteKvCacheShapes(q, k, v, positions, cos_sin, rotary_dim, meta, k_cache, v_cache, kAct);
}

absl::Status CheckPagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                 const AttentionMetadata& meta, const Tensor& out) {
  constexpr absl::string_view kOp = "PagedAttention";
  RETURN_IF_ERROR(Expect(kOp, "q", q, kAct, {"T", "H", "D"}));
  const int64_t T = q.dim(0), H = q.dim(1), D = q.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "k_cache", k_cache, kAct, {"NB", "BS", "Hkv", D}));
  const int64_t NB = k_cache.dim(0), BS = k_cache.dim(1), Hkv = k_cache.dim(2);
  if (Hkv == 0 || H % Hkv != 0) {
    return OpError(kOp, absl::StrCat("q has ", H, " heads, not a multiple of the cache's ", Hkv, " kv heads"));
  }
  RETURN_IF_ERROR(CheckBlockSize(kOp, BS));
  RETURN_IF_ERROR(Expect(kOp, "v_cache", v_cache, kAct, {NB, BS, Hkv, "Dv"}));
  const int64_t Dv = v_cache.dim(3);
  RETURN_IF_ERROR(Expect(kOp, "out", out, kAct, {T, H, Dv}));
  RETURN_IF_ERROR(CheckHeadDims(kOp, D, Dv));
  return CheckAttentionMetaShapes(kOp, meta, T, BS);
}

absl::Status CheckWriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const AttentionMetadata& meta,
                                const Tensor& cache) {
  constexpr absl::string_view kOp = "WriteMlaCache";
  RETURN_IF_ERROR(Expect(kOp, "kv_c", kv_c, kAct, {"T", "L"}));
  const int64_t T = kv_c.dim(0), L = kv_c.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "k_pe", k_pe, kAct, {T, "R"}));
  RETURN_IF_ERROR(Expect(kOp, "cache", cache, kAct, {"NB", "BS", L + k_pe.dim(1)}));
  RETURN_IF_ERROR(Expect(kOp, "meta.slot_mapping", meta.slot_mapping, DType::kI32, {T}));
  if (meta.block_size != cache.dim(1)) {
    return OpError(
        kOp, absl::StrCat("meta.block_size ", meta.block_size, " differs from the cache's block size ", cache.dim(1)));
  }
  return absl::OkStatus();
}

absl::Status CheckRopeWriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const Tensor& positions,
                                    const Tensor& cos_sin, const AttentionMetadata& meta, const Tensor& cache) {
  constexpr absl::string_view kOp = "RopeWriteMlaCache";
  RETURN_IF_ERROR(Expect(kOp, "kv_c", kv_c, kAct, {"T", "L"}));
  const int64_t T = kv_c.dim(0), L = kv_c.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "k_pe", k_pe, kAct, {T, "R"}));
  const int64_t R = k_pe.dim(1);
  if (R <= 0 || R % 2 != 0) {
    return OpError(kOp, absl::StrCat("k_pe has ", R, " dims, expected a positive even number"));
  }
  RETURN_IF_ERROR(Expect(kOp, "positions", positions, DType::kI32, {T}));
  RETURN_IF_ERROR(Expect(kOp, "cos_sin", cos_sin, DType::kF32, {"max_position", R}));
  RETURN_IF_ERROR(Expect(kOp, "cache", cache, kAct, {"NB", "BS", L + R}));
  RETURN_IF_ERROR(Expect(kOp, "meta.slot_mapping", meta.slot_mapping, DType::kI32, {T}));
  if (meta.block_size != cache.dim(1)) {
    return OpError(
        kOp, absl::StrCat("meta.block_size ", meta.block_size, " differs from the cache's block size ", cache.dim(1)));
  }
  return absl::OkStatus();
}

absl::Status CheckPagedMlaAttention(const Tensor& q_latent, const Tensor& q_pe, const Tensor& cache,
                                    const AttentionMetadata& meta, const Tensor& out) {
  constexpr absl::string_view kOp = "PagedMlaAttention";
  RETURN_IF_ERROR(Expect(kOp, "q_latent", q_latent, kAct, {"T", "H", "L"}));
  const int64_t T = q_latent.dim(0), H = q_latent.dim(1), L = q_latent.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "q_pe", q_pe, kAct, {T, H, "R"}));
  const int64_t R = q_pe.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "cache", cache, kAct, {"NB", "BS", L + R}));
  const int64_t BS = cache.dim(1);
  RETURN_IF_ERROR(CheckBlockSize(kOp, BS));
  RETURN_IF_ERROR(Expect(kOp, "out", out, kAct, {T, H, L}));
  if (!kernels::MlaShapeSupported(L, R)) {
    return OpError(kOp, absl::StrCat("latent dim ", L, " / rope dim ", R,
                                     " are not supported by the CUDA MLA kernels (L <= 512, L + R <= 576)"));
  }
  return CheckAttentionMetaShapes(kOp, meta, T, BS);
}

absl::Status CheckMoeRoute(const Tensor& router_logits, const Tensor& correction_bias, const MoeRoutingParams& params,
                           const Tensor& topk_ids, const Tensor& topk_weights) {
  constexpr absl::string_view kOp = "MoeRoute";
  const DType ld = router_logits.defined() && router_logits.dtype() == DType::kBF16 ? DType::kBF16 : DType::kF32;
  RETURN_IF_ERROR(Expect(kOp, "router_logits", router_logits, ld, {"T", "E"}));
  const int64_t T = router_logits.dim(0), E = router_logits.dim(1);
  if (E == 0) return OpError(kOp, "router_logits has no experts");
  RETURN_IF_ERROR(CheckMoeRoutingParams(params, E));
  if (params.method == MoeTopkMethod::kNoAuxTc) {
    RETURN_IF_ERROR(Expect(kOp, "correction_bias", correction_bias, DType::kF32, {E}));
  } else if (correction_bias.defined()) {
    return OpError(kOp, "correction_bias is only used by the noaux_tc method; pass an empty tensor");
  }
  RETURN_IF_ERROR(Expect(kOp, "topk_ids", topk_ids, DType::kI32, {T, params.top_k}));
  return Expect(kOp, "topk_weights", topk_weights, DType::kF32, {T, params.top_k});
}

absl::Status CheckMoeExperts(const Tensor& x, const Tensor& topk_ids, const Tensor& topk_weights, const Tensor& gate_up,
                             const Tensor& down, const Tensor& out, const MoeExpertsExtras& extras) {
  constexpr absl::string_view kOp = "MoeExperts";
  RETURN_IF_ERROR(Expect(kOp, "x", x, kAct, {"T", "d"}));
  const int64_t T = x.dim(0), d = x.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "topk_ids", topk_ids, DType::kI32, {T, "k"}));
  RETURN_IF_ERROR(Expect(kOp, "topk_weights", topk_weights, DType::kF32, {T, topk_ids.dim(1)}));
  // Weights: bf16, or fp8 block weights (CreateFp8BlockWeight) for both.
  const DType wt = gate_up.defined() && gate_up.dtype() == DType::kF8E4M3 ? DType::kF8E4M3 : DType::kBF16;
  RETURN_IF_ERROR(Expect(kOp, "gate_up", gate_up, wt, {"E", "2I", d}));
  const int64_t E = gate_up.dim(0), I2 = gate_up.dim(1);
  if (I2 % 2 != 0) {
    return OpError(kOp, absl::StrCat("gate_up has shape ", gate_up.shape().ToString(), ", expected [E, 2I, ", d,
                                     "] with an even 2I"));
  }
  RETURN_IF_ERROR(Expect(kOp, "down", down, wt, {E, d, I2 / 2}));
  if (E > kernels::kMoeMaxExperts) {
    return OpError(kOp, absl::StrCat(E, " experts; the CUDA backend supports up to ", kernels::kMoeMaxExperts));
  }
  if (d % 8 != 0 || (I2 / 2) % 8 != 0) {
    return OpError(kOp, absl::StrCat("hidden ", d, " and intermediate ", I2 / 2, " must be multiples of 8 on CUDA"));
  }
  if (wt == DType::kF8E4M3 && (d % 128 != 0 || (I2 / 2) % 128 != 0)) {
    return OpError(kOp, absl::StrCat("fp8 expert weights need hidden ", d, " and intermediate ", I2 / 2,
                                     " to be multiples of 128"));
  }
  if (extras.shared_out.defined()) {
    RETURN_IF_ERROR(Expect(kOp, "shared_out", extras.shared_out, kAct, {T, d}));
  }
  const int64_t S = extras.num_shared_experts;
  if (S < 0 || S >= E) {
    return OpError(
        kOp, absl::StrCat("num_shared_experts ", S, " is outside [0, ", E, ") (the last S of the ", E, " experts)"));
  }
  const int64_t total = extras.num_routed_experts > 0 ? extras.num_routed_experts : E - S;
  if (extras.first_expert < 0 || extras.first_expert + E - S > total || total > 0x7fffffff) {
    return OpError(kOp, absl::StrCat("experts [", extras.first_expert, ", ", extras.first_expert + E - S,
                                     ") are outside the model's ", total, " routed experts"));
  }
  if (extras.expert_counts.defined()) {
    RETURN_IF_ERROR(Expect(kOp, "expert_counts", extras.expert_counts, DType::kI64, {E - S}));
  }
  if (extras.num_valid_tokens.defined()) {
    RETURN_IF_ERROR(Expect(kOp, "num_valid_tokens", extras.num_valid_tokens, DType::kI32, {1}));
  }
  return Expect(kOp, "out", out, kAct, {T, d});
}

}  // namespace moeserve::cuda_checks

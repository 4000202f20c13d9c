#include "server/model/gqa_attention.h"

#include "server/common/status_macros.h"

namespace moeserve {

absl::StatusOr<std::unique_ptr<GqaAttention>> GqaAttention::Load(WeightLoader& loader, const GqaTensors& t,
                                                                 const ModelConfig& c) {
  auto a = std::make_unique<GqaAttention>();
  a->num_heads_ = c.num_attention_heads;
  a->num_kv_heads_ = c.num_key_value_heads;
  a->head_dim_ = c.head_dim;
  a->rotary_dim_ = c.rotary_dim;
  a->scale_ = static_cast<float>(c.attention_scale);
  a->norm_eps_ = static_cast<float>(c.rms_norm_eps);
  a->rope_style_ = c.rope_style;
  ASSIGN_OR_RETURN(a->q_, loader.Load(t.q));
  ASSIGN_OR_RETURN(a->k_, loader.Load(t.k));
  ASSIGN_OR_RETURN(a->v_, loader.Load(t.v));
  ASSIGN_OR_RETURN(a->o_, loader.Load(t.o));
  for (auto [spec, tensor] : {std::pair{&t.q_bias, &a->q_bias_}, std::pair{&t.k_bias, &a->k_bias_},
                              std::pair{&t.v_bias, &a->v_bias_}, std::pair{&t.o_bias, &a->o_bias_},
                              std::pair{&t.q_norm, &a->q_norm_},
                              std::pair{&t.k_norm, &a->k_norm_}}) {
    if (*spec) {
      ASSIGN_OR_RETURN(*tensor, loader.Load(**spec));
    }
  }
  return a;
}

int64_t GqaAttention::CacheBytesPerToken(DType act) const {
  return 2 * num_kv_heads_ * head_dim_ * static_cast<int64_t>(DTypeSize(act));
}

void GqaAttention::FreeCache() {
  k_cache_ = Tensor();
  v_cache_ = Tensor();
}

absl::Status GqaAttention::AllocateCache(Backend* b, int32_t num_blocks, int32_t block_size) {
  const Shape shape{num_blocks, block_size, num_kv_heads_, head_dim_};
  ASSIGN_OR_RETURN(k_cache_, b->Allocate(b->activation_dtype(), shape));
  ASSIGN_OR_RETURN(v_cache_, b->Allocate(b->activation_dtype(), shape));
  RETURN_IF_ERROR(b->Zero(k_cache_));
  return b->Zero(v_cache_);
}

absl::Status GqaAttention::Forward(Backend* b, const StepContext& ctx, const Tensor& rope_cos_sin, const Tensor& x,
                                   const Tensor& out) const {
  const DType act = b->activation_dtype();
  const int64_t t = ctx.num_tokens, h = num_heads_, kv = num_kv_heads_, hd = head_dim_;
  ASSIGN_OR_RETURN(Tensor q, b->Allocate(act, {t, h, hd}));
  ASSIGN_OR_RETURN(Tensor k, b->Allocate(act, {t, kv, hd}));
  ASSIGN_OR_RETURN(Tensor v, b->Allocate(act, {t, kv, hd}));
  RETURN_IF_ERROR(b->Linear(x, q_, q_bias_, q.View({t, h * hd})));
  RETURN_IF_ERROR(b->Linear(x, k_, k_bias_, k.View({t, kv * hd})));
  RETURN_IF_ERROR(b->Linear(x, v_, v_bias_, v.View({t, kv * hd})));
  if (q_norm_.defined()) {
    // Qwen3: RMSNorm over each head's D values (rows of [T·H, D]), before RoPE.
    RETURN_IF_ERROR(b->RmsNorm(q.View({t * h, hd}), q_norm_, norm_eps_, q.View({t * h, hd})));
    RETURN_IF_ERROR(b->RmsNorm(k.View({t * kv, hd}), k_norm_, norm_eps_, k.View({t * kv, hd})));
  }
  RETURN_IF_ERROR(b->RopeWriteKvCache(q, k, v, ctx.positions, rope_cos_sin, static_cast<int32_t>(rotary_dim_),
                                      rope_style_, ctx.attention, k_cache_, v_cache_));
  ASSIGN_OR_RETURN(Tensor attn, b->Allocate(act, {t, h, hd}));
  RETURN_IF_ERROR(b->PagedAttention(q, k_cache_, v_cache_, ctx.attention, scale_, attn));
  return b->Linear(attn.View({t, h * hd}), o_, o_bias_, out);
}

}  // namespace moeserve

#include "server/model/gqa_attention.h"

#include <tuple>

#include "server/common/status_macros.h"
#include "server/model/parallel.h"

namespace moeserve {

absl::StatusOr<std::unique_ptr<GqaAttention>> GqaAttention::Load(WeightLoader& loader, const GqaTensors& t,
                                                                 const ModelConfig& c) {
  auto a = std::make_unique<GqaAttention>();
  // Tensor parallelism: this rank's query heads and the kv heads they read (parallel.h). With fewer
  // kv heads than ranks, each kv head is replicated on N / Hkv ranks (all of a rank's query heads
  // then read the same one).
  const ModelParallel& parallel = loader.parallel();
  ASSIGN_OR_RETURN(const Range heads, parallel.Share(c.num_attention_heads, "num_attention_heads"));
  Range kv_heads;
  if (const int64_t n = parallel.size(), kv = c.num_key_value_heads; kv % n == 0 || n % kv != 0) {
    ASSIGN_OR_RETURN(kv_heads, parallel.Share(kv, "num_key_value_heads"));
  } else {
    kv_heads = {parallel.rank() / (n / kv), 1};
  }
  const int64_t hd = c.head_dim;
  const Range q_rows{heads.begin * hd, heads.count * hd}, kv_rows{kv_heads.begin * hd, kv_heads.count * hd};
  a->num_heads_ = heads.count;
  a->num_kv_heads_ = kv_heads.count;
  a->head_dim_ = hd;
  a->rotary_dim_ = c.rotary_dim;
  a->scale_ = static_cast<float>(c.attention_scale);
  a->norm_eps_ = static_cast<float>(c.rms_norm_eps);
  a->rope_style_ = c.rope_style;
  ASSIGN_OR_RETURN(a->q_, LoadSlice(loader, t.q, 0, q_rows));
  ASSIGN_OR_RETURN(a->k_, LoadSlice(loader, t.k, 0, kv_rows));
  ASSIGN_OR_RETURN(a->v_, LoadSlice(loader, t.v, 0, kv_rows));
  ASSIGN_OR_RETURN(a->o_, LoadSlice(loader, t.o, 1, q_rows));  // row-parallel: a partial sum per rank
  for (auto [spec, tensor, rows] :
       {std::tuple{&t.q_bias, &a->q_bias_, q_rows}, std::tuple{&t.k_bias, &a->k_bias_, kv_rows},
        std::tuple{&t.v_bias, &a->v_bias_, kv_rows}}) {
    if (*spec) {
      ASSIGN_OR_RETURN(*tensor, LoadSlice(loader, **spec, 0, rows));
    }
  }
  // The output bias once in the sum over ranks: on rank 0.
  if (t.o_bias && parallel.rank() == 0) {
    ASSIGN_OR_RETURN(a->o_bias_, loader.Load(*t.o_bias));
  }
  for (auto [spec, tensor] : {std::pair{&t.q_norm, &a->q_norm_}, std::pair{&t.k_norm, &a->k_norm_}}) {
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

absl::Status GqaAttention::ProjectAndWrite(Backend* b, const StepContext& ctx, const Tensor& rope_cos_sin,
                                           const Tensor& x, Tensor* q_out) const {
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
  *q_out = q;
  return absl::OkStatus();
}

absl::Status GqaAttention::WriteCache(Backend* b, const StepContext& ctx, const Tensor& rope_cos_sin,
                                      const Tensor& x) const {
  Tensor q;  // the cache write rotates q with k: projected, then dropped
  return ProjectAndWrite(b, ctx, rope_cos_sin, x, &q);
}

absl::Status GqaAttention::Forward(Backend* b, const StepContext& ctx, const Tensor& rope_cos_sin, const Tensor& x,
                                   const Tensor& out) const {
  const DType act = b->activation_dtype();
  const int64_t t = ctx.num_tokens, h = num_heads_, hd = head_dim_;
  Tensor q;
  RETURN_IF_ERROR(ProjectAndWrite(b, ctx, rope_cos_sin, x, &q));
  ASSIGN_OR_RETURN(Tensor attn, b->Allocate(act, {t, h, hd}));
  RETURN_IF_ERROR(b->PagedAttention(q, k_cache_, v_cache_, ctx.attention, scale_, attn));
  return b->Linear(attn.View({t, h * hd}), o_, o_bias_, out);
}

}  // namespace moeserve

#include "server/model/mla_attention.h"

#include <vector>

#include "server/common/status_macros.h"
#include "server/model/parallel.h"

namespace moeserve {
namespace {

// The latent norms are built without the config's eps in DeepSeek's code: always 1e-6.
constexpr float kLatentNormEps = 1e-6f;

}  // namespace

absl::StatusOr<std::unique_ptr<MlaAttention>> MlaAttention::Load(WeightLoader& loader, const MlaTensors& t,
                                                                 const ModelConfig& c) {
  auto a = std::make_unique<MlaAttention>();
  const int64_t dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim, l = c.kv_lora_rank;
  // Tensor parallelism: this rank's heads (q_b, kv_b rows; o columns). The latent projections, and
  // so the latent cache, are whole on every rank (parallel.h).
  ASSIGN_OR_RETURN(const Range heads, loader.parallel().Share(c.num_attention_heads, "num_attention_heads"));
  const int64_t h = heads.count;
  a->num_heads_ = h;
  a->q_lora_rank_ = c.q_lora_rank;
  a->kv_lora_rank_ = l;
  a->nope_dim_ = dn;
  a->rope_dim_ = dr;
  a->v_dim_ = dv;
  a->scale_ = static_cast<float>(c.attention_scale);
  a->rope_style_ = c.rope_style;

  // Query: optional low-rank compression, then per head [nope | rope] rows.
  if (t.q_a) {
    ASSIGN_OR_RETURN(a->q_a_, loader.Load(*t.q_a));
    ASSIGN_OR_RETURN(a->q_a_norm_, loader.Load(*t.q_a_norm));
  }
  const int64_t q_in = t.q.shape[1];
  ASSIGN_OR_RETURN(std::vector<float> q, HostSlice(loader, t.q, 0, {heads.begin * (dn + dr), h * (dn + dr)}));
  std::vector<float> q_nope, q_pe;
  for (int64_t head = 0; head < h; ++head) {
    const auto nope = TakeRows(q, q_in, head * (dn + dr), dn);
    const auto pe = TakeRows(q, q_in, head * (dn + dr) + dn, dr);
    q_nope.insert(q_nope.end(), nope.begin(), nope.end());
    q_pe.insert(q_pe.end(), pe.begin(), pe.end());
  }
  ASSIGN_OR_RETURN(a->q_nope_, loader.Upload(q_nope, {h * dn, q_in}));
  ASSIGN_OR_RETURN(a->q_pe_, loader.Upload(q_pe, {h * dr, q_in}));

  // Keys/values: latent + shared rope key from one projection.
  const int64_t d = t.kv_a.shape[1];
  ASSIGN_OR_RETURN(std::vector<float> kv_a, loader.Host(t.kv_a));
  ASSIGN_OR_RETURN(a->kv_a_, loader.Upload(TakeRows(kv_a, d, 0, l), {l, d}));
  ASSIGN_OR_RETURN(a->k_pe_, loader.Upload(TakeRows(kv_a, d, l, dr), {dr, d}));
  ASSIGN_OR_RETURN(a->kv_a_norm_, loader.Load(t.kv_a_norm));

  // kv_b_proj rows per head: [W_UK (dn x L) | W_UV (dv x L)]. Absorb: keep W_UKᵀ per head.
  ASSIGN_OR_RETURN(std::vector<float> kv_b, HostSlice(loader, t.kv_b, 0, {heads.begin * (dn + dv), h * (dn + dv)}));
  std::vector<float> uk_t(static_cast<size_t>(h * l * dn)), uv;
  for (int64_t head = 0; head < h; ++head) {
    const float* uk = kv_b.data() + head * (dn + dv) * l;
    for (int64_t r = 0; r < dn; ++r) {
      for (int64_t col = 0; col < l; ++col) uk_t[(head * l + col) * dn + r] = uk[r * l + col];
    }
    const auto v = TakeRows(kv_b, l, head * (dn + dv) + dn, dv);
    uv.insert(uv.end(), v.begin(), v.end());
  }
  ASSIGN_OR_RETURN(a->uk_t_, loader.Upload(uk_t, {h, l, dn}));
  ASSIGN_OR_RETURN(a->uv_, loader.Upload(uv, {h, dv, l}));
  ASSIGN_OR_RETURN(a->o_, LoadSlice(loader, t.o, 1, {heads.begin * dv, h * dv}));  // row-parallel
  return a;
}

int64_t MlaAttention::CacheBytesPerToken(DType act) const {
  return (kv_lora_rank_ + rope_dim_) * static_cast<int64_t>(DTypeSize(act));
}

void MlaAttention::FreeCache() { cache_ = Tensor(); }

absl::Status MlaAttention::AllocateCache(Backend* b, int32_t num_blocks, int32_t block_size) {
  ASSIGN_OR_RETURN(cache_, b->Allocate(b->activation_dtype(), {num_blocks, block_size, kv_lora_rank_ + rope_dim_}));
  return b->Zero(cache_);
}

absl::Status MlaAttention::WriteCache(Backend* b, const StepContext& ctx, const Tensor& rope_cos_sin,
                                      const Tensor& x) const {
  const DType act = b->activation_dtype();
  const int64_t t = ctx.num_tokens;
  ASSIGN_OR_RETURN(Tensor kv_c, b->Allocate(act, {t, kv_lora_rank_}));
  ASSIGN_OR_RETURN(Tensor k_pe, b->Allocate(act, {t, rope_dim_}));
  RETURN_IF_ERROR(b->Linear(x, kv_a_, Tensor(), kv_c));
  RETURN_IF_ERROR(b->Linear(x, k_pe_, Tensor(), k_pe));
  RETURN_IF_ERROR(b->RmsNorm(kv_c, kv_a_norm_, kLatentNormEps, kv_c));
  // The rope key is only read back from the cache: rotate it on its way in (one op, no k_pe
  // round trip).
  return b->RopeWriteMlaCache(kv_c, k_pe, ctx.positions, rope_cos_sin, rope_style_, ctx.attention, cache_);
}

absl::Status MlaAttention::Forward(Backend* b, const StepContext& ctx, const Tensor& rope_cos_sin, const Tensor& x,
                                   const Tensor& out) const {
  const DType act = b->activation_dtype();
  const int64_t t = ctx.num_tokens, h = num_heads_;
  const int64_t dn = nope_dim_, dr = rope_dim_, dv = v_dim_, l = kv_lora_rank_;

  Tensor q_in = x;
  if (q_a_.defined()) {
    ASSIGN_OR_RETURN(q_in, b->Allocate(act, {t, q_lora_rank_}));
    RETURN_IF_ERROR(b->Linear(x, q_a_, Tensor(), q_in));
    RETURN_IF_ERROR(b->RmsNorm(q_in, q_a_norm_, kLatentNormEps, q_in));
  }
  ASSIGN_OR_RETURN(Tensor q_nope, b->Allocate(act, {t, h, dn}));
  ASSIGN_OR_RETURN(Tensor q_pe, b->Allocate(act, {t, h, dr}));
  RETURN_IF_ERROR(b->Linear(q_in, q_nope_, Tensor(), q_nope.View({t, h * dn})));
  RETURN_IF_ERROR(b->Linear(q_in, q_pe_, Tensor(), q_pe.View({t, h * dr})));
  RETURN_IF_ERROR(WriteCache(b, ctx, rope_cos_sin, x));
  RETURN_IF_ERROR(b->Rope(q_pe, ctx.positions, rope_cos_sin, static_cast<int32_t>(dr), rope_style_));

  ASSIGN_OR_RETURN(Tensor q_latent, b->Allocate(act, {t, h, l}));
  RETURN_IF_ERROR(b->HeadwiseLinear(q_nope, uk_t_, q_latent));
  ASSIGN_OR_RETURN(Tensor latent_out, b->Allocate(act, {t, h, l}));
  RETURN_IF_ERROR(b->PagedMlaAttention(q_latent, q_pe, cache_, ctx.attention, scale_, latent_out));
  ASSIGN_OR_RETURN(Tensor heads, b->Allocate(act, {t, h, dv}));
  RETURN_IF_ERROR(b->HeadwiseLinear(latent_out, uv_, heads));
  return b->Linear(heads.View({t, h * dv}), o_, Tensor(), out);
}

}  // namespace moeserve

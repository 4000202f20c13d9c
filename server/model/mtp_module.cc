#include "server/model/mtp_module.h"

#include <vector>

#include "server/common/status_macros.h"

namespace moeserve {

absl::StatusOr<MtpModule> MtpModule::Load(WeightLoader& loader, const MtpTensors& t, const ModelConfig& c,
                                          const Tensor& lm_head) {
  ASSIGN_OR_RETURN(DecoderLayer layer, DecoderLayer::Load(loader, t.layer, c));
  MtpModule m(std::move(layer));
  const int64_t d = c.hidden_size;
  ASSIGN_OR_RETURN(m.enorm_, loader.Load(t.enorm));
  ASSIGN_OR_RETURN(m.hnorm_, loader.Load(t.hnorm));
  ASSIGN_OR_RETURN(std::vector<float> eh, loader.Host(t.eh_proj));  // [d, 2d]
  std::vector<float> eh_embed, eh_hidden;
  eh_embed.reserve(static_cast<size_t>(d * d));
  eh_hidden.reserve(static_cast<size_t>(d * d));
  for (int64_t r = 0; r < d; ++r) {
    eh_embed.insert(eh_embed.end(), eh.begin() + r * 2 * d, eh.begin() + r * 2 * d + d);
    eh_hidden.insert(eh_hidden.end(), eh.begin() + r * 2 * d + d, eh.begin() + (r + 1) * 2 * d);
  }
  ASSIGN_OR_RETURN(m.eh_embed_, loader.Upload(eh_embed, {d, d}));
  ASSIGN_OR_RETURN(m.eh_hidden_, loader.Upload(eh_hidden, {d, d}));
  ASSIGN_OR_RETURN(m.head_norm_, loader.Load(t.head_norm));
  m.head_ = lm_head;
  if (t.head && loader.Has(*t.head)) {
    ASSIGN_OR_RETURN(m.head_, loader.Load(*t.head));
  }
  return m;
}

absl::StatusOr<Tensor> MtpModule::Residual(Backend* b, const StepContext& ctx, const Tensor& embed, float eps,
                                           const Tensor& prev_hidden) const {
  const DType act = b->activation_dtype();
  const int64_t t = ctx.num_tokens;
  const int64_t d = prev_hidden.dim(1);
  ASSIGN_OR_RETURN(Tensor e, b->Allocate(act, {t, d}));
  ASSIGN_OR_RETURN(Tensor g, b->Allocate(act, {t, d}));
  RETURN_IF_ERROR(b->Embedding(embed, ctx.token_ids, e));
  RETURN_IF_ERROR(b->RmsNorm(e, enorm_, eps, e));
  RETURN_IF_ERROR(b->RmsNorm(prev_hidden, hnorm_, eps, g));
  ASSIGN_OR_RETURN(Tensor from_embed, b->Allocate(act, {t, d}));
  ASSIGN_OR_RETURN(Tensor from_hidden, b->Allocate(act, {t, d}));
  RETURN_IF_ERROR(b->Linear(e, eh_embed_, Tensor(), from_embed));
  RETURN_IF_ERROR(b->Linear(g, eh_hidden_, Tensor(), from_hidden));
  ASSIGN_OR_RETURN(Tensor residual, b->Allocate(act, {t, d}));
  RETURN_IF_ERROR(b->Add(from_embed, from_hidden, residual));
  return residual;
}

absl::Status MtpModule::WriteCache(Backend* b, const StepContext& ctx, const Tensor& embed, const Tensor& rope_cos_sin,
                                   float eps, const Tensor& prev_hidden) const {
  ASSIGN_OR_RETURN(Tensor residual, Residual(b, ctx, embed, eps, prev_hidden));
  ASSIGN_OR_RETURN(Tensor x, b->Allocate(b->activation_dtype(), residual.shape()));
  RETURN_IF_ERROR(b->RmsNorm(residual, layer_.input_norm(), eps, x));
  return layer_.attention().WriteCache(b, ctx, rope_cos_sin, x);
}

absl::StatusOr<MtpOutput> MtpModule::Forward(Backend* b, const StepContext& ctx, const Tensor& embed,
                                             const Tensor& rope_cos_sin, float eps, const Tensor& prev_hidden) const {
  const DType act = b->activation_dtype();
  const int64_t t = ctx.num_tokens;
  const int64_t d = prev_hidden.dim(1);
  ASSIGN_OR_RETURN(Tensor residual, Residual(b, ctx, embed, eps, prev_hidden));
  ASSIGN_OR_RETURN(Tensor e, b->Allocate(act, {t, d}));  // the layer's scratch
  // One decoder layer; the shared head's norm takes the final norm's place.
  ASSIGN_OR_RETURN(Tensor x, b->Allocate(act, {t, d}));
  RETURN_IF_ERROR(b->RmsNorm(residual, layer_.input_norm(), eps, x));
  RETURN_IF_ERROR(layer_.Forward(b, ctx, rope_cos_sin, eps, head_norm_, residual, x, /*block_out=*/e));
  const int64_t n = ctx.logits_indices.defined() ? ctx.logits_indices.dim(0) : 0;
  ASSIGN_OR_RETURN(Tensor rows, b->Allocate(act, {n, d}));
  RETURN_IF_ERROR(b->GatherRows(x, ctx.logits_indices, rows));
  MtpOutput out;
  ASSIGN_OR_RETURN(out.logits, b->Allocate(act, {n, head_.dim(0)}));
  RETURN_IF_ERROR(b->Linear(rows, head_, Tensor(), out.logits));
  out.hidden = residual;
  return out;
}

}  // namespace moeserve

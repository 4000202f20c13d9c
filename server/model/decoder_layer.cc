#include "server/model/decoder_layer.h"

#include <algorithm>
#include <vector>

#include "server/common/status_macros.h"
#include "server/model/gqa_attention.h"
#include "server/model/mla_attention.h"

namespace moeserve {
namespace {

absl::StatusOr<std::unique_ptr<AttentionBlock>> LoadAttention(WeightLoader& loader, const GqaTensors& t,
                                                              const ModelConfig& c) {
  return GqaAttention::Load(loader, t, c);
}

absl::StatusOr<std::unique_ptr<AttentionBlock>> LoadAttention(WeightLoader& loader, const MlaTensors& t,
                                                              const ModelConfig& c) {
  return MlaAttention::Load(loader, t, c);
}

}  // namespace

absl::StatusOr<DecoderLayer> DecoderLayer::Load(WeightLoader& loader, const LayerTensors& t, const ModelConfig& c) {
  DecoderLayer layer;
  layer.parallel_ = loader.parallel();
  ASSIGN_OR_RETURN(layer.input_norm_, loader.Load(t.input_norm));
  ASSIGN_OR_RETURN(layer.attention_,
                   std::visit([&](const auto& a) { return LoadAttention(loader, a, c); }, t.attention));
  ASSIGN_OR_RETURN(layer.post_attention_norm_, loader.Load(t.post_attention_norm));
  if (const auto* moe = std::get_if<MoeTensors>(&t.ffn)) {
    ASSIGN_OR_RETURN(layer.moe_, MoeFfn::Load(loader, *moe, c));
  } else {
    ASSIGN_OR_RETURN(layer.mlp_, DenseMlp::Load(loader, std::get<MlpTensors>(t.ffn)));
  }
  return layer;
}

absl::Status DecoderLayer::Forward(Backend* b, const StepContext& ctx, const Tensor& rope_cos_sin, float eps,
                                   const Tensor& next_norm, const Tensor& residual, const Tensor& x,
                                   const Tensor& block_out) const {
  // With tensor parallelism each block gives this rank's partial sum (parallel.h): the all-reduce
  // makes it the block's output on every rank before the residual add.
  RETURN_IF_ERROR(attention_->Forward(b, ctx, rope_cos_sin, x, block_out));
  if (moe_ && parallel_.ep_all_to_all()) return ForwardOwnTokens(b, ctx, eps, next_norm, residual, x, block_out);
  RETURN_IF_ERROR(parallel_.AllReduce(block_out));
  RETURN_IF_ERROR(b->AddRmsNorm(block_out, residual, post_attention_norm_, eps, x));
  if (moe_) {
    RETURN_IF_ERROR(moe_->Forward(b, x, block_out, ctx.num_valid_tokens));
  } else {
    RETURN_IF_ERROR(mlp_->Forward(b, x, block_out));
  }
  RETURN_IF_ERROR(parallel_.AllReduce(block_out));
  return b->AddRmsNorm(block_out, residual, next_norm, eps, x);
}

namespace {

// An i32 [n] index tensor.
absl::StatusOr<Tensor> Indices(Backend* b, const std::vector<int32_t>& host) {
  ASSIGN_OR_RETURN(Tensor t, b->Allocate(DType::kI32, {static_cast<int64_t>(host.size())}));
  RETURN_IF_ERROR(b->CopyFromHost(HostBytes(host), t));
  return t;
}

}  // namespace

// Rank r owns rows [r · P, (r + 1) · P) of the step's T tokens padded to N · P: the attention's
// partial sums are reduce-scattered to their owners, which add them to their residual rows, run
// the MoE on their tokens (moe_dispatch.h) and add it too; an all-gather of the residual rows then
// gives every rank every token for the next layer's attention. The residual adds happen in the
// same order as on one rank.
absl::Status DecoderLayer::ForwardOwnTokens(Backend* b, const StepContext& ctx, float eps, const Tensor& next_norm,
                                            const Tensor& residual, const Tensor& x, const Tensor& block_out) const {
  Communicator* comm = parallel_.comm();
  const int64_t t = x.dim(0), d = x.dim(1), n = parallel_.size();
  const int64_t per = (t + n - 1) / n, padded = per * n, first = parallel_.rank() * per;
  int64_t valid = t;
  if (ctx.num_valid_tokens.defined()) {
    int32_t host = 0;
    RETURN_IF_ERROR(b->CopyToHost(ctx.num_valid_tokens, absl::MakeSpan(reinterpret_cast<uint8_t*>(&host), 4)));
    valid = std::clamp<int64_t>(host, 0, t);
  }
  std::vector<int32_t> all_rows(t), own_rows(per);
  for (int64_t i = 0; i < t; ++i) all_rows[i] = static_cast<int32_t>(i);
  for (int64_t i = 0; i < per; ++i) own_rows[i] = static_cast<int32_t>(std::min(first + i, t - 1));  // pad: any row

  Tensor partial = block_out;
  ASSIGN_OR_RETURN(Tensor all_index, Indices(b, all_rows));
  if (padded != t) {
    ASSIGN_OR_RETURN(partial, b->Allocate(block_out.dtype(), {padded, d}));
    RETURN_IF_ERROR(b->Zero(partial));
    RETURN_IF_ERROR(b->GatherRows(block_out, all_index, partial.Slice(0, t)));
  }
  ASSIGN_OR_RETURN(Tensor attention, b->Allocate(block_out.dtype(), {per, d}));
  RETURN_IF_ERROR(comm->ReduceScatter(partial, attention));
  ASSIGN_OR_RETURN(Tensor own_residual, b->Allocate(residual.dtype(), {per, d}));
  ASSIGN_OR_RETURN(Tensor own_index, Indices(b, own_rows));
  RETURN_IF_ERROR(b->GatherRows(residual, own_index, own_residual));
  ASSIGN_OR_RETURN(Tensor own_x, b->Allocate(x.dtype(), {per, d}));
  RETURN_IF_ERROR(b->AddRmsNorm(attention, own_residual, post_attention_norm_, eps, own_x));
  ASSIGN_OR_RETURN(Tensor ffn, b->Allocate(block_out.dtype(), {per, d}));
  RETURN_IF_ERROR(moe_->ForwardOwnTokens(b, parallel_, own_x, std::clamp<int64_t>(valid - first, 0, per), ffn));
  RETURN_IF_ERROR(b->Add(own_residual, ffn, own_residual));
  if (padded == t) {
    RETURN_IF_ERROR(comm->AllGather(own_residual, residual));
  } else {
    ASSIGN_OR_RETURN(Tensor gathered, b->Allocate(residual.dtype(), {padded, d}));
    RETURN_IF_ERROR(comm->AllGather(own_residual, gathered));
    RETURN_IF_ERROR(b->GatherRows(gathered, all_index, residual));
  }
  return b->RmsNorm(residual, next_norm, eps, x);
}

}  // namespace moeserve

#include "server/model/decoder_layer.h"

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

}  // namespace moeserve

#include "server/model/decoder_model.h"

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/rope.h"

namespace moeserve {

absl::Status DecoderModel::LoadShared(WeightLoader& loader) {
  const ModelConfig& c = config_;
  const int64_t d = c.hidden_size;
  ASSIGN_OR_RETURN(embed_, loader.Load("model.embed_tokens.weight", {c.vocab_size, d}));
  ASSIGN_OR_RETURN(final_norm_, loader.Load("model.norm.weight", {d}));
  if (c.tie_word_embeddings || !loader.Has("lm_head.weight")) {
    lm_head_ = embed_;
  } else {
    ASSIGN_OR_RETURN(lm_head_, loader.Load("lm_head.weight", {c.vocab_size, d}));
  }
  layers_.resize(c.num_hidden_layers);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    Layer& layer = layers_[i];
    const std::string p = absl::StrCat("model.layers.", i);
    ASSIGN_OR_RETURN(layer.input_norm, loader.Load(p + ".input_layernorm.weight", {d}));
    ASSIGN_OR_RETURN(layer.post_attention_norm, loader.Load(p + ".post_attention_layernorm.weight", {d}));
    if (c.IsMoeLayer(i)) {
      // Mixtral checkpoints on the hub use `block_sparse_moe`; transformers 5 writes `mlp`.
      std::string moe_prefix = p + ".mlp";
      if (c.architecture == Architecture::kMixtral && loader.Has(p + ".block_sparse_moe.gate.weight")) {
        moe_prefix = p + ".block_sparse_moe";
      }
      ASSIGN_OR_RETURN(layer.moe, MoeFfn::Load(loader, moe_prefix, c));
    } else {
      ASSIGN_OR_RETURN(layer.mlp, DenseMlp::Load(loader, p + ".mlp", d, c.intermediate_size));
    }
  }
  const int64_t rotary_dim = c.rotary_dim();
  const std::vector<float> table =
      BuildRopeCosSinTable(ComputeRopeFrequencies(c.rope, rotary_dim), max_model_len_);
  ASSIGN_OR_RETURN(rope_cos_sin_, backend_->Allocate(DType::kF32, {max_model_len_, rotary_dim}));
  return backend_->CopyFromHost(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(table.data()), table.size() * sizeof(float)),
      rope_cos_sin_);
}

absl::StatusOr<ExpertLoad> DecoderModel::ReadExpertLoad() {
  ExpertLoad load;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!layers_[i].moe) continue;
    const Tensor& counts = layers_[i].moe->expert_counts();
    const int32_t e = static_cast<int32_t>(counts.numel());
    if (load.layers.empty()) load.num_experts = e;
    if (e != load.num_experts) {
      return absl::InternalError(absl::StrCat("ReadExpertLoad: layer ", i, " has ", e,
                                              " experts, an earlier MoE layer ", load.num_experts));
    }
    load.layers.push_back(static_cast<int32_t>(i));
    const size_t base = load.tokens.size();
    load.tokens.resize(base + e);
    RETURN_IF_ERROR(backend_->CopyToHost(
        counts, absl::MakeSpan(reinterpret_cast<uint8_t*>(load.tokens.data() + base),
                               e * sizeof(int64_t))));
  }
  return load;
}

absl::Status DecoderModel::ResetExpertLoad() {
  for (const Layer& layer : layers_) {
    if (layer.moe) RETURN_IF_ERROR(backend_->Zero(layer.moe->expert_counts()));
  }
  return absl::OkStatus();
}

absl::Status DecoderModel::AllocateKvCache(const KvLayout& layout) {
  if (layout.num_blocks <= 0 || layout.block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("AllocateKvCache: num_blocks (", layout.num_blocks,
                                                   ") and block_size (", layout.block_size, ") must be positive"));
  }
  if (layout.spec != kv_cache_spec()) {
    const KvCacheSpec own = kv_cache_spec();
    return absl::InvalidArgumentError(absl::StrCat(
        "AllocateKvCache: the layout's spec (", layout.spec.num_layers, " layers x ",
        layout.spec.bytes_per_token_per_layer, " B/token) is not this model's (", own.num_layers, " x ",
        own.bytes_per_token_per_layer, ")"));
  }
  kv_layout_.num_blocks = 0;  // no cache while reallocating
  RETURN_IF_ERROR(AllocateLayerCaches(layout.num_blocks, layout.block_size));
  kv_layout_ = layout;
  return absl::OkStatus();
}

absl::Status DecoderModel::ValidateBatch(const ForwardBatch& batch) const {
  if (kv_layout_.num_blocks == 0) return absl::FailedPreconditionError("Forward: the KV cache is not allocated");
  if (batch.block_size != kv_layout_.block_size) {
    return absl::InvalidArgumentError(absl::StrCat("Forward: batch block_size ", batch.block_size,
                                                   " != cache block size ", kv_layout_.block_size));
  }
  RETURN_IF_ERROR(batch.Validate(kv_layout_.num_blocks, static_cast<int32_t>(max_model_len_)));
  for (int32_t id : batch.token_ids) {
    if (id >= config_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("Forward: token id ", id, " is outside the vocabulary [0, ", config_.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> DecoderModel::Forward(const ForwardBatch& batch) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  ASSIGN_OR_RETURN(StepContext ctx, StepContext::Upload(batch, backend_));
  return ForwardOnDevice(ctx);
}

absl::StatusOr<Tensor> DecoderModel::ForwardOnDevice(const StepContext& ctx) {
  if (kv_layout_.num_blocks == 0) return absl::FailedPreconditionError("Forward: the KV cache is not allocated");
  Backend* b = backend_;
  const DType act = b->activation_dtype();
  const int64_t t = ctx.num_tokens;
  const int64_t d = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);

  ASSIGN_OR_RETURN(Tensor residual, b->Allocate(act, {t, d}));
  ASSIGN_OR_RETURN(Tensor x, b->Allocate(act, {t, d}));
  ASSIGN_OR_RETURN(Tensor block_out, b->Allocate(act, {t, d}));
  RETURN_IF_ERROR(b->Embedding(embed_, ctx.token_ids, residual));
  RETURN_IF_ERROR(b->RmsNorm(residual, layers_.empty() ? final_norm_ : layers_[0].input_norm, eps, x));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    RETURN_IF_ERROR(Attention(static_cast<int>(i), ctx, x, block_out));
    RETURN_IF_ERROR(b->AddRmsNorm(block_out, residual, layer.post_attention_norm, eps, x));
    if (layer.moe) {
      RETURN_IF_ERROR(layer.moe->Forward(b, x, block_out, ctx.num_valid_tokens));
    } else {
      RETURN_IF_ERROR(layer.mlp->Forward(b, x, block_out));
    }
    const Tensor& next_norm = i + 1 < layers_.size() ? layers_[i + 1].input_norm : final_norm_;
    RETURN_IF_ERROR(b->AddRmsNorm(block_out, residual, next_norm, eps, x));
  }
  const int64_t n = ctx.logits_indices.defined() ? ctx.logits_indices.dim(0) : 0;
  ASSIGN_OR_RETURN(Tensor rows, b->Allocate(act, {n, d}));
  RETURN_IF_ERROR(b->GatherRows(x, ctx.logits_indices, rows));
  ASSIGN_OR_RETURN(Tensor logits, b->Allocate(act, {n, config_.vocab_size}));
  RETURN_IF_ERROR(b->Linear(rows, lm_head_, Tensor(), logits));
  return logits;
}

}  // namespace moeserve

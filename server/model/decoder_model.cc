#include "server/model/decoder_model.h"

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/rope.h"

namespace moeserve {

absl::StatusOr<std::unique_ptr<DecoderModel>> DecoderModel::Load(const ModelConfig& c, const DecoderTensors& tensors,
                                                                 WeightLoader& loader, int64_t max_model_len) {
  std::unique_ptr<DecoderModel> m(new DecoderModel(c, loader.backend(), max_model_len));
  // Tensor parallelism: the embedding and LM head split by vocabulary (parallel.h).
  m->parallel_ = loader.parallel();
  ASSIGN_OR_RETURN(m->vocab_, m->parallel_.Share(c.vocab_size, "vocab_size"));
  ASSIGN_OR_RETURN(m->embed_, LoadSlice(loader, tensors.embed, 0, m->vocab_));
  ASSIGN_OR_RETURN(m->final_norm_, loader.Load(tensors.final_norm));
  if (tensors.lm_head && loader.Has(*tensors.lm_head)) {
    ASSIGN_OR_RETURN(m->lm_head_, LoadSlice(loader, *tensors.lm_head, 0, m->vocab_));
  } else {
    m->lm_head_ = m->embed_;
  }
  m->layers_.reserve(tensors.layers.size());
  for (const LayerTensors& layer : tensors.layers) {
    ASSIGN_OR_RETURN(DecoderLayer loaded, DecoderLayer::Load(loader, layer, c));
    m->layers_.push_back(std::move(loaded));
  }
  if (tensors.mtp) {
    ASSIGN_OR_RETURN(m->mtp_, MtpModule::Load(loader, *tensors.mtp, c, m->lm_head_));
  }
  m->weight_bytes_ = loader.bytes_loaded();
  const int64_t rotary_dim = c.rotary_dim;
  const std::vector<float> table = BuildRopeCosSinTable(ComputeRopeFrequencies(c.rope, rotary_dim), max_model_len);
  Backend* b = m->backend_;
  ASSIGN_OR_RETURN(m->rope_cos_sin_, b->Allocate(DType::kF32, {max_model_len, rotary_dim}));
  RETURN_IF_ERROR(b->CopyFromHost(HostBytes(table), m->rope_cos_sin_));
  return m;
}

std::vector<const DecoderLayer*> DecoderModel::CachedLayers() const {
  std::vector<const DecoderLayer*> layers;
  for (const DecoderLayer& layer : layers_) layers.push_back(&layer);
  if (mtp_) layers.push_back(&mtp_->layer());
  return layers;
}

KvCacheSpec DecoderModel::kv_cache_spec() const {
  const std::vector<const DecoderLayer*> layers = CachedLayers();
  const int64_t per_token =
      layers.empty() ? 0 : layers[0]->attention().CacheBytesPerToken(backend_->activation_dtype());
  return {static_cast<int64_t>(layers.size()), per_token};
}

absl::StatusOr<ExpertLoad> DecoderModel::ReadExpertLoad() {
  ExpertLoad load;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const MoeFfn* moe = layers_[i].moe();
    if (moe == nullptr) continue;
    const Tensor& counts = moe->expert_counts();
    const int32_t e = static_cast<int32_t>(counts.numel());
    if (load.layers.empty()) load.num_experts = e;
    if (e != load.num_experts) {
      return absl::InternalError(
          absl::StrCat("ReadExpertLoad: layer ", i, " has ", e, " experts, an earlier MoE layer ", load.num_experts));
    }
    load.layers.push_back(static_cast<int32_t>(i));
    const size_t base = load.tokens.size();
    load.tokens.resize(base + e);
    RETURN_IF_ERROR(backend_->CopyToHost(
        counts, absl::MakeSpan(reinterpret_cast<uint8_t*>(load.tokens.data() + base), e * sizeof(int64_t))));
  }
  return load;
}

absl::Status DecoderModel::ResetExpertLoad() {
  for (const DecoderLayer& layer : layers_) {
    if (layer.moe() != nullptr) RETURN_IF_ERROR(backend_->Zero(layer.moe()->expert_counts()));
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
    return absl::InvalidArgumentError(absl::StrCat("AllocateKvCache: the layout's spec (", layout.spec.num_layers,
                                                   " layers x ", layout.spec.bytes_per_token_per_layer,
                                                   " B/token) is not this model's (", own.num_layers, " x ",
                                                   own.bytes_per_token_per_layer, ")"));
  }
  // No cache while reallocating; every layer's old cache is freed first so that the old and the new
  // one never coexist.
  kv_layout_.num_blocks = 0;
  const std::vector<const DecoderLayer*> layers = CachedLayers();
  for (const DecoderLayer* layer : layers) layer->attention().FreeCache();
  for (const DecoderLayer* layer : layers) {
    RETURN_IF_ERROR(layer->attention().AllocateCache(backend_, layout.num_blocks, layout.block_size));
  }
  kv_layout_ = layout;
  return absl::OkStatus();
}

absl::Status DecoderModel::ValidateBatch(const ForwardBatch& batch) const {
  if (kv_layout_.num_blocks == 0) return absl::FailedPreconditionError("Forward: the KV cache is not allocated");
  if (batch.block_size != kv_layout_.block_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("Forward: batch block_size ", batch.block_size, " != cache block size ", kv_layout_.block_size));
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
  ASSIGN_OR_RETURN(Tensor x, RunLayers(ctx));
  return Logits(ctx, x);
}

absl::StatusOr<Tensor> DecoderModel::ForwardWithHidden(const ForwardBatch& batch, Tensor* hidden) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  ASSIGN_OR_RETURN(StepContext ctx, StepContext::Upload(batch, backend_));
  ASSIGN_OR_RETURN(*hidden, RunLayers(ctx));
  return Logits(ctx, *hidden);
}

absl::StatusOr<StepContext> DecoderModel::MtpContext(absl::string_view op, const ForwardBatch& batch,
                                                     const Tensor& prev_hidden) {
  if (!mtp_) return absl::FailedPreconditionError(absl::StrCat(op, ": no MTP layer loaded"));
  RETURN_IF_ERROR(ValidateBatch(batch));
  const int64_t t = batch.num_tokens();
  const int64_t d = config_.hidden_size;
  if (prev_hidden.rank() != 2 || prev_hidden.dim(0) != t || prev_hidden.dim(1) != d) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": prev_hidden must be [", t, ", ", d, "], got ", prev_hidden.shape().ToString()));
  }
  return StepContext::Upload(batch, backend_);
}

absl::StatusOr<MtpOutput> DecoderModel::ForwardMtp(const ForwardBatch& batch, const Tensor& prev_hidden) {
  ASSIGN_OR_RETURN(StepContext ctx, MtpContext("ForwardMtp", batch, prev_hidden));
  return mtp_->Forward(backend_, ctx, embed_, rope_cos_sin_, static_cast<float>(config_.rms_norm_eps), prev_hidden);
}

absl::Status DecoderModel::WriteMtpCache(const ForwardBatch& batch, const Tensor& prev_hidden) {
  ASSIGN_OR_RETURN(StepContext ctx, MtpContext("WriteMtpCache", batch, prev_hidden));
  return mtp_->WriteCache(backend_, ctx, embed_, rope_cos_sin_, static_cast<float>(config_.rms_norm_eps), prev_hidden);
}

absl::StatusOr<Tensor> DecoderModel::RunLayers(const StepContext& ctx) {
  if (kv_layout_.num_blocks == 0) return absl::FailedPreconditionError("Forward: the KV cache is not allocated");
  Backend* b = backend_;
  const DType act = b->activation_dtype();
  const int64_t t = ctx.num_tokens;
  const int64_t d = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);

  ASSIGN_OR_RETURN(Tensor residual, b->Allocate(act, {t, d}));
  ASSIGN_OR_RETURN(Tensor x, b->Allocate(act, {t, d}));
  ASSIGN_OR_RETURN(Tensor block_out, b->Allocate(act, {t, d}));
  if (parallel_.sharded()) {
    RETURN_IF_ERROR(b->EmbeddingShard(embed_, ctx.token_ids, vocab_.begin, residual));
    RETURN_IF_ERROR(parallel_.AllReduce(residual));
  } else {
    RETURN_IF_ERROR(b->Embedding(embed_, ctx.token_ids, residual));
  }
  RETURN_IF_ERROR(b->RmsNorm(residual, layers_.empty() ? final_norm_ : layers_[0].input_norm(), eps, x));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Tensor& next_norm = i + 1 < layers_.size() ? layers_[i + 1].input_norm() : final_norm_;
    RETURN_IF_ERROR(layers_[i].Forward(b, ctx, rope_cos_sin_, eps, next_norm, residual, x, block_out));
  }
  return x;
}

absl::StatusOr<Tensor> DecoderModel::Logits(const StepContext& ctx, const Tensor& x) {
  Backend* b = backend_;
  const DType act = b->activation_dtype();
  const int64_t d = config_.hidden_size;
  const int64_t n = ctx.logits_indices.defined() ? ctx.logits_indices.dim(0) : 0;
  ASSIGN_OR_RETURN(Tensor rows, b->Allocate(act, {n, d}));
  RETURN_IF_ERROR(b->GatherRows(x, ctx.logits_indices, rows));
  if (!parallel_.sharded()) {
    ASSIGN_OR_RETURN(Tensor logits, b->Allocate(act, {n, config_.vocab_size}));
    RETURN_IF_ERROR(b->Linear(rows, lm_head_, Tensor(), logits));
    return logits;
  }
  // This rank's vocabulary columns, gathered from every rank: [N, n, V/N] in rank order, then
  // re-laid as [n, V] (row i * N + r of the [n * N, V/N] result is rank r's part of row i).
  const int64_t ranks = parallel_.size(), part = vocab_.count;
  ASSIGN_OR_RETURN(Tensor local, b->Allocate(act, {n, part}));
  RETURN_IF_ERROR(b->Linear(rows, lm_head_, Tensor(), local));
  ASSIGN_OR_RETURN(Tensor gathered, b->Allocate(act, {ranks * n, part}));
  RETURN_IF_ERROR(parallel_.comm()->AllGather(local, gathered));
  ASSIGN_OR_RETURN(const Tensor order, LogitsOrder(n));
  ASSIGN_OR_RETURN(Tensor logits, b->Allocate(act, {n, config_.vocab_size}));
  RETURN_IF_ERROR(b->GatherRows(gathered, order, logits.View({n * ranks, part})));
  return logits;
}

absl::StatusOr<Tensor> DecoderModel::LogitsOrder(int64_t n) {
  if (auto it = logits_order_.find(n); it != logits_order_.end()) return it->second;
  const int64_t ranks = parallel_.size();
  std::vector<int32_t> order(static_cast<size_t>(n * ranks));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < ranks; ++r) order[i * ranks + r] = static_cast<int32_t>(r * n + i);
  }
  // Made on a shape's first (eager) step, so a graph recorded later only reads it.
  ASSIGN_OR_RETURN(Tensor t, backend_->Allocate(DType::kI32, {n * ranks}));
  RETURN_IF_ERROR(backend_->CopyFromHost(HostBytes(order), t));
  logits_order_.emplace(n, t);
  return t;
}

}  // namespace moeserve

#ifndef MOESERVE_SERVER_MODEL_DECODER_MODEL_H_
#define MOESERVE_SERVER_MODEL_DECODER_MODEL_H_

#include <optional>
#include <vector>

#include "server/model/ffn.h"
#include "server/model/model.h"
#include "server/model/step_context.h"
#include "server/model/weight_loader.h"

namespace moeserve {

// The pre-norm decoder stack every supported architecture shares: embedding, per layer
// (RMSNorm → attention → residual, RMSNorm → dense or MoE FFN → residual), final norm, LM head on
// the rows that need logits. Subclasses supply the attention block and its KV cache layout.
class DecoderModel : public Model {
 public:
  const ModelConfig& config() const override { return config_; }
  const KvLayout& kv_layout() const override { return kv_layout_; }
  absl::Status AllocateKvCache(const KvLayout& layout) override;
  absl::StatusOr<Tensor> Forward(const ForwardBatch& batch) override;
  absl::Status ValidateBatch(const ForwardBatch& batch) const override;
  absl::StatusOr<Tensor> ForwardOnDevice(const StepContext& ctx) override;
  absl::StatusOr<ExpertLoad> ReadExpertLoad() override;
  absl::Status ResetExpertLoad() override;

 protected:
  DecoderModel(ModelConfig config, Backend* backend, int64_t max_model_len)
      : config_(std::move(config)), backend_(backend), max_model_len_(max_model_len) {}

  // Loads embedding, norms, FFNs and LM head, and builds the rotary table.
  absl::Status LoadShared(WeightLoader& loader);

  // out [T, hidden] = attention of layer `layer` over normed input x [T, hidden]; writes this
  // step's K/V (or latent) rows into the layer's cache first.
  virtual absl::Status Attention(int layer, const StepContext& ctx, const Tensor& x, const Tensor& out) = 0;
  // Allocates the per-layer caches for `num_blocks` x `block_size` tokens.
  virtual absl::Status AllocateLayerCaches(int32_t num_blocks, int32_t block_size) = 0;

  Backend* backend() const { return backend_; }
  const Tensor& rope_cos_sin() const { return rope_cos_sin_; }
  int64_t max_model_len() const { return max_model_len_; }

  ModelConfig config_;

 private:
  struct Layer {
    Tensor input_norm;
    Tensor post_attention_norm;
    std::optional<DenseMlp> mlp;
    std::optional<MoeFfn> moe;
  };

  Backend* backend_;
  int64_t max_model_len_;
  Tensor embed_;         // [V, d]
  Tensor final_norm_;    // [d]
  Tensor lm_head_;       // [V, d] (the embedding when tied)
  Tensor rope_cos_sin_;  // [max_model_len, rotary_dim]
  std::vector<Layer> layers_;
  KvLayout kv_layout_{.num_blocks = 0};  // the allocated cache's
};

// Architecture-specific factories (llama.cc, deepseek.cc).
absl::StatusOr<std::unique_ptr<Model>> LoadLlamaFamily(const ModelConfig& config, const Checkpoint& checkpoint,
                                                       Backend* backend, int64_t max_model_len);
absl::StatusOr<std::unique_ptr<Model>> LoadDeepseek(const ModelConfig& config, const Checkpoint& checkpoint,
                                                    Backend* backend, int64_t max_model_len);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_DECODER_MODEL_H_

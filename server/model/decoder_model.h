#ifndef MOESERVE_SERVER_MODEL_DECODER_MODEL_H_
#define MOESERVE_SERVER_MODEL_DECODER_MODEL_H_

#include <memory>
#include <vector>

#include "server/model/decoder_layer.h"
#include "server/model/decoder_tensors.h"
#include "server/model/model.h"
#include "server/model/step_context.h"
#include "server/model/weight_loader.h"

namespace moeserve {

// The pre-norm decoder stack every built-in architecture is: embedding, DecoderLayers, final
// norm, LM head on the rows that need logits. The layers' attention blocks own the paged KV cache.
class DecoderModel final : public Model {
 public:
  // Loads `tensors` (an architecture's layout of the checkpoint) through `loader`; the rotary
  // table covers positions [0, max_model_len). A checkpoint without the LM head ties it to the
  // embedding.
  static absl::StatusOr<std::unique_ptr<DecoderModel>> Load(const ModelConfig& config, const DecoderTensors& tensors,
                                                            WeightLoader& loader, int64_t max_model_len);

  const ModelConfig& config() const override { return config_; }
  KvCacheSpec kv_cache_spec() const override;
  const KvLayout& kv_layout() const override { return kv_layout_; }
  absl::Status AllocateKvCache(const KvLayout& layout) override;
  absl::StatusOr<Tensor> Forward(const ForwardBatch& batch) override;
  absl::Status ValidateBatch(const ForwardBatch& batch) const override;
  absl::StatusOr<Tensor> ForwardOnDevice(const StepContext& ctx) override;
  absl::StatusOr<ExpertLoad> ReadExpertLoad() override;
  absl::Status ResetExpertLoad() override;

 private:
  DecoderModel(ModelConfig config, Backend* backend, int64_t max_model_len)
      : config_(std::move(config)), backend_(backend), max_model_len_(max_model_len) {}

  ModelConfig config_;
  Backend* backend_;
  int64_t max_model_len_;
  Tensor embed_;         // [V, d]
  Tensor final_norm_;    // [d]
  Tensor lm_head_;       // [V, d] (the embedding when tied)
  Tensor rope_cos_sin_;  // [max_model_len, rotary_dim]
  std::vector<DecoderLayer> layers_;
  KvLayout kv_layout_{.num_blocks = 0};  // the allocated cache's
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_DECODER_MODEL_H_

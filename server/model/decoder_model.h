#ifndef MOESERVE_SERVER_MODEL_DECODER_MODEL_H_
#define MOESERVE_SERVER_MODEL_DECODER_MODEL_H_

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/model/decoder_layer.h"
#include "server/model/decoder_tensors.h"
#include "server/model/model.h"
#include "server/model/mtp_module.h"
#include "server/model/parallel.h"
#include "server/model/step_context.h"
#include "server/model/weight_loader.h"

namespace moeserve {

// The pre-norm decoder stack every built-in architecture is: embedding, DecoderLayers, final
// norm, LM head on the rows that need logits. The layers' attention blocks own the paged KV cache.
// Optionally DeepSeek-V3's MTP module (mtp_module.h) with its own KV cache, run only by ForwardMtp.
class DecoderModel final : public Model {
 public:
  // Loads `tensors` (an architecture's layout of the checkpoint) through `loader`, the MTP module
  // when tensors.mtp is set; the rotary table covers positions [0, max_model_len). A checkpoint
  // without the LM head ties it to the embedding.
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
  int64_t weight_bytes() const override { return weight_bytes_; }
  bool has_mtp() const override { return mtp_.has_value(); }
  absl::StatusOr<Tensor> ForwardWithHidden(const ForwardBatch& batch, Tensor* hidden) override;
  absl::StatusOr<MtpOutput> ForwardMtp(const ForwardBatch& batch, const Tensor& prev_hidden) override;
  absl::Status WriteMtpCache(const ForwardBatch& batch, const Tensor& prev_hidden) override;

 private:
  DecoderModel(ModelConfig config, Backend* backend, int64_t max_model_len)
      : config_(std::move(config)), backend_(backend), max_model_len_(max_model_len) {}

  // [n * N] i32: the gathered logits' rows in [n, V] order (tensor parallelism), per row count n.
  absl::StatusOr<Tensor> LogitsOrder(int64_t n);
  // Every layer with a KV cache: the decoder layers, then the MTP module's.
  std::vector<const DecoderLayer*> CachedLayers() const;
  // ForwardMtp's and WriteMtpCache's checks of batch and prev_hidden, then the batch's upload.
  absl::StatusOr<StepContext> MtpContext(absl::string_view op, const ForwardBatch& batch, const Tensor& prev_hidden);
  // The stack over ctx: final-norm hidden rows [T, d].
  absl::StatusOr<Tensor> RunLayers(const StepContext& ctx);
  // LM-head logits of hidden's rows ctx.logits_indices.
  absl::StatusOr<Tensor> Logits(const StepContext& ctx, const Tensor& hidden);

  ModelConfig config_;
  Backend* backend_;
  ModelParallel parallel_;
  Range vocab_;  // this rank's rows of the embedding and LM head
  std::map<int64_t, Tensor> logits_order_;
  int64_t weight_bytes_ = 0;
  int64_t max_model_len_;
  Tensor embed_;         // [V / N, d]: this rank's vocabulary rows
  Tensor final_norm_;    // [d]
  Tensor lm_head_;       // [V / N, d] (the embedding when tied)
  Tensor rope_cos_sin_;  // [max_model_len, rotary_dim]
  std::vector<DecoderLayer> layers_;
  std::optional<MtpModule> mtp_;
  KvLayout kv_layout_{.num_blocks = 0};  // the allocated cache's
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_DECODER_MODEL_H_

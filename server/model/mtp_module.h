#ifndef MOESERVE_SERVER_MODEL_MTP_MODULE_H_
#define MOESERVE_SERVER_MODEL_MTP_MODULE_H_

#include "absl/status/statusor.h"
#include "server/model/config.h"
#include "server/model/decoder_layer.h"
#include "server/model/decoder_tensors.h"
#include "server/model/model.h"
#include "server/model/step_context.h"
#include "server/model/weight_loader.h"

namespace moeserve {

// DeepSeek-V3's multi-token-prediction (MTP) module, the drafter of MTP speculative decoding
// (tools/mtp_reference.py is its independent reference). For position i, with h_i the main
// model's final-norm hidden state and t_{i+1} the next token:
//   residual = eh_proj(concat(enorm(embed(t_{i+1})), hnorm(h_i)))   (eh_proj split by columns)
//   y = DecoderLayer(residual)  (its own attention and KV cache)
//   logits = shared_head.head(shared_head.norm(y))                   (predicts t_{i+2})
// Movable, not copyable; requires external synchronisation (the model's caller).
class MtpModule {
 public:
  // `lm_head` stands in for shared_head.head when the checkpoint omits it.
  static absl::StatusOr<MtpModule> Load(WeightLoader& loader, const MtpTensors& tensors, const ModelConfig& config,
                                        const Tensor& lm_head);

  const DecoderLayer& layer() const { return layer_; }

  // One pass over ctx: ctx.token_ids row i is t_{i+1}, prev_hidden [T, d] row i is h_i (or, chaining,
  // the `hidden` this returned for the previous position). `embed` [V, d] is the model's embedding,
  // rope_cos_sin its rotary table.
  absl::StatusOr<MtpOutput> Forward(Backend* backend, const StepContext& ctx, const Tensor& embed,
                                    const Tensor& rope_cos_sin, float eps, const Tensor& prev_hidden) const;
  // Forward's KV rows only (the residual, the layer's input norm, its attention's cache write):
  // for rows whose logits and output nobody reads.
  absl::Status WriteCache(Backend* backend, const StepContext& ctx, const Tensor& embed, const Tensor& rope_cos_sin,
                          float eps, const Tensor& prev_hidden) const;

 private:
  explicit MtpModule(DecoderLayer layer) : layer_(std::move(layer)) {}
  // The layer's input, residual [T, d] = eh_proj(concat(enorm(embed(t)), hnorm(h))).
  absl::StatusOr<Tensor> Residual(Backend* backend, const StepContext& ctx, const Tensor& embed, float eps,
                                  const Tensor& prev_hidden) const;

  Tensor enorm_, hnorm_;  // [d]
  Tensor eh_embed_;       // [d, d]: the columns of eh_proj that multiply enorm(embed(t))
  Tensor eh_hidden_;      // [d, d]: the columns that multiply hnorm(h)
  Tensor head_norm_;      // [d] shared_head.norm
  Tensor head_;           // [V, d] shared_head.head (the LM head when the checkpoint omits it)
  DecoderLayer layer_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_MTP_MODULE_H_

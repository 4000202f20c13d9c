#ifndef MOESERVE_SERVER_MODEL_DECODER_LAYER_H_
#define MOESERVE_SERVER_MODEL_DECODER_LAYER_H_

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "server/model/attention_block.h"
#include "server/model/config.h"
#include "server/model/decoder_tensors.h"
#include "server/model/ffn.h"
#include "server/model/parallel.h"
#include "server/model/weight_loader.h"

namespace moeserve {

// One pre-norm decoder layer: RMSNorm → attention → residual, RMSNorm → dense or MoE FFN →
// residual. The attention block and the FFN follow the LayerTensors' kinds. Movable, not copyable;
// requires external synchronisation.
class DecoderLayer {
 public:
  static absl::StatusOr<DecoderLayer> Load(WeightLoader& loader, const LayerTensors& tensors,
                                           const ModelConfig& config);

  const Tensor& input_norm() const { return input_norm_; }
  AttentionBlock& attention() const { return *attention_; }
  const MoeFfn* moe() const { return moe_ ? &*moe_ : nullptr; }

  // One layer over x = input_norm(residual) [T, d]: residual += attention(x);
  // x = post_attention_norm(residual); residual += ffn(x); x = next_norm(residual), where next_norm
  // is the next layer's input norm or the final norm (the residual add fuses with it).
  // block_out [T, d] is scratch.
  absl::Status Forward(Backend* backend, const StepContext& ctx, const Tensor& rope_cos_sin, float eps,
                       const Tensor& next_norm, const Tensor& residual, const Tensor& x, const Tensor& block_out) const;

 private:
  DecoderLayer() = default;
  // The rest of Forward for a MoE layer with the all-to-all dispatch (parallel.h), from this
  // rank's partial attention output in block_out.
  absl::Status ForwardOwnTokens(Backend* backend, const StepContext& ctx, float eps, const Tensor& next_norm,
                                const Tensor& residual, const Tensor& x, const Tensor& block_out) const;

  ModelParallel parallel_;      // the blocks hold this rank's share; outputs are all-reduced
  Tensor input_norm_;           // [d]
  Tensor post_attention_norm_;  // [d]
  std::unique_ptr<AttentionBlock> attention_;
  std::optional<DenseMlp> mlp_;
  std::optional<MoeFfn> moe_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_DECODER_LAYER_H_

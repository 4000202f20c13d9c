#ifndef MOESERVE_SERVER_MODEL_GQA_ATTENTION_H_
#define MOESERVE_SERVER_MODEL_GQA_ATTENTION_H_

#include <memory>

#include "absl/status/statusor.h"
#include "server/model/attention_block.h"
#include "server/model/config.h"
#include "server/model/decoder_tensors.h"
#include "server/model/weight_loader.h"

namespace moeserve {

// Multi-head attention with grouped K/V heads over a paged cache [NB, BS, Hkv, D] for K and for V:
// q/k/v/o projections (+ optional biases), optional per-head RMSNorm of q and k (Qwen3), RoPE on the
// first rotary_dim dims in config.rope_style fused with the cache write, paged attention, o
// projection.
class GqaAttention final : public AttentionBlock {
 public:
  static absl::StatusOr<std::unique_ptr<GqaAttention>> Load(WeightLoader& loader, const GqaTensors& tensors,
                                                            const ModelConfig& config);

  int64_t CacheBytesPerToken(DType act) const override;
  absl::Status AllocateCache(Backend* backend, int32_t num_blocks, int32_t block_size) override;
  void FreeCache() override;
  absl::Status Forward(Backend* backend, const StepContext& ctx, const Tensor& rope_cos_sin, const Tensor& x,
                       const Tensor& out) const override;
  absl::Status WriteCache(Backend* backend, const StepContext& ctx, const Tensor& rope_cos_sin,
                          const Tensor& x) const override;

 private:
  // The q/k/v projections of x, k and v rotated into the cache; q (rotated) into *q.
  absl::Status ProjectAndWrite(Backend* backend, const StepContext& ctx, const Tensor& rope_cos_sin, const Tensor& x,
                               Tensor* q) const;

  int64_t num_heads_ = 0, num_kv_heads_ = 0, head_dim_ = 0, rotary_dim_ = 0;
  float scale_ = 0.0f, norm_eps_ = 0.0f;
  RopeStyle rope_style_ = RopeStyle::kNeox;
  Tensor q_, k_, v_, o_;                      // [H·D, d], [Hkv·D, d], [Hkv·D, d], [d, H·D]
  Tensor q_bias_, k_bias_, v_bias_, o_bias_;  // empty unless the architecture has them
  Tensor q_norm_, k_norm_;                    // [D] or empty
  Tensor k_cache_, v_cache_;                  // [NB, BS, Hkv, D]
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_GQA_ATTENTION_H_

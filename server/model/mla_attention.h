#ifndef MOESERVE_SERVER_MODEL_MLA_ATTENTION_H_
#define MOESERVE_SERVER_MODEL_MLA_ATTENTION_H_

#include <memory>

#include "absl/status/statusor.h"
#include "server/model/attention_block.h"
#include "server/model/config.h"
#include "server/model/decoder_tensors.h"
#include "server/model/weight_loader.h"

namespace moeserve {

// DeepSeek-V2/V3 multi-head latent attention (MLA) with weight absorption.
//
// Per token the cache holds one latent row [kv_c (kv_lora_rank) | k_pe (qk_rope_head_dim)] per
// layer. Queries are projected into the latent space through the key half of kv_b_proj (W_UK), so
// attention runs directly over latent rows for prefill and decode alike, and the latent output is
// projected back through the value half (W_UV):
//   score = scale · (q_nope·W_UKᵀ · kv_c + q_pe · k_pe),  out_h = W_UV,h · Σ softmax · kv_c.
// RoPE in config.rope_style (DeepSeek: adjacent pairs). q_b_proj and kv_a_proj_with_mqa are split at
// load into their no-rope and rope parts so every op reads contiguous tensors.
class MlaAttention final : public AttentionBlock {
 public:
  static absl::StatusOr<std::unique_ptr<MlaAttention>> Load(WeightLoader& loader, const MlaTensors& tensors,
                                                            const ModelConfig& config);

  int64_t CacheBytesPerToken(DType act) const override;
  absl::Status AllocateCache(Backend* backend, int32_t num_blocks, int32_t block_size) override;
  void FreeCache() override;
  absl::Status Forward(Backend* backend, const StepContext& ctx, const Tensor& rope_cos_sin, const Tensor& x,
                       const Tensor& out) const override;
  absl::Status WriteCache(Backend* backend, const StepContext& ctx, const Tensor& rope_cos_sin,
                          const Tensor& x) const override;

 private:
  int64_t num_heads_ = 0, q_lora_rank_ = 0, kv_lora_rank_ = 0;
  int64_t nope_dim_ = 0, rope_dim_ = 0, v_dim_ = 0;
  float scale_ = 0.0f;
  RopeStyle rope_style_ = RopeStyle::kInterleaved;
  Tensor q_a_, q_a_norm_;  // [q_lora, d], [q_lora]; empty without query compression
  Tensor q_nope_, q_pe_;   // [H·dn, q_in], [H·dr, q_in]
  Tensor kv_a_, k_pe_;     // [L, d], [dr, d]
  Tensor kv_a_norm_;       // [L]
  Tensor uk_t_;            // [H, L, dn]: W_UK transposed per head
  Tensor uv_;              // [H, dv, L]
  Tensor o_;               // [d, H·dv]
  Tensor cache_;           // [NB, BS, L + dr]
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_MLA_ATTENTION_H_

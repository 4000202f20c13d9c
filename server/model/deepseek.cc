// DeepSeek-V2/V3 multi-head latent attention (MLA) with weight absorption.
//
// Per token the cache holds one latent row [kv_c (kv_lora_rank) | k_pe (qk_rope_head_dim)] per
// layer. Queries are projected into the latent space through the key half of kv_b_proj (W_UK), so
// attention runs directly over latent rows for prefill and decode alike, and the latent output is
// projected back through the value half (W_UV):
//   score = scale · (q_nope·W_UKᵀ · kv_c + q_pe · k_pe),  out_h = W_UV,h · Σ softmax · kv_c.
// Rotary embedding uses adjacent pairs (DeepSeek's layout). q_b_proj and kv_a_proj_with_mqa are
// split at load into their no-rope and rope parts so every op reads contiguous tensors.

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/model/decoder_model.h"

namespace moeserve {
namespace {

class DeepseekModel final : public DecoderModel {
 public:
  DeepseekModel(ModelConfig config, Backend* backend, int64_t max_model_len)
      : DecoderModel(std::move(config), backend, max_model_len) {}

  absl::Status Load(WeightLoader& loader) {
    RETURN_IF_ERROR(LoadShared(loader));
    const ModelConfig& c = config_;
    const int64_t d = c.hidden_size, h = c.num_attention_heads;
    const int64_t dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim, l = c.kv_lora_rank;
    attention_.resize(c.num_hidden_layers);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      MlaWeights& w = attention_[i];
      const std::string p = absl::StrCat("model.layers.", i, ".self_attn.");
      // Query: optional low-rank compression, then per head [nope | rope] rows.
      int64_t q_in = d;
      std::string q_name = p + "q_proj.weight";
      if (c.q_lora_rank > 0) {
        ASSIGN_OR_RETURN(w.q_a, loader.Load(p + "q_a_proj.weight", {c.q_lora_rank, d}));
        ASSIGN_OR_RETURN(w.q_a_norm, loader.Load(p + "q_a_layernorm.weight", {c.q_lora_rank}));
        q_in = c.q_lora_rank;
        q_name = p + "q_b_proj.weight";
      }
      ASSIGN_OR_RETURN(std::vector<float> q, loader.Host(q_name, {h * (dn + dr), q_in}));
      std::vector<float> q_nope, q_pe;
      for (int64_t head = 0; head < h; ++head) {
        const auto nope = TakeRows(q, q_in, head * (dn + dr), dn);
        const auto pe = TakeRows(q, q_in, head * (dn + dr) + dn, dr);
        q_nope.insert(q_nope.end(), nope.begin(), nope.end());
        q_pe.insert(q_pe.end(), pe.begin(), pe.end());
      }
      ASSIGN_OR_RETURN(w.q_nope, loader.Upload(q_nope, {h * dn, q_in}));
      ASSIGN_OR_RETURN(w.q_pe, loader.Upload(q_pe, {h * dr, q_in}));

      // Keys/values: latent + shared rope key from one projection.
      ASSIGN_OR_RETURN(std::vector<float> kv_a, loader.Host(p + "kv_a_proj_with_mqa.weight", {l + dr, d}));
      ASSIGN_OR_RETURN(w.kv_a, loader.Upload(TakeRows(kv_a, d, 0, l), {l, d}));
      ASSIGN_OR_RETURN(w.k_pe, loader.Upload(TakeRows(kv_a, d, l, dr), {dr, d}));
      ASSIGN_OR_RETURN(w.kv_a_norm, loader.Load(p + "kv_a_layernorm.weight", {l}));

      // kv_b_proj rows per head: [W_UK (dn x L) | W_UV (dv x L)]. Absorb: keep W_UKᵀ per head.
      ASSIGN_OR_RETURN(std::vector<float> kv_b, loader.Host(p + "kv_b_proj.weight", {h * (dn + dv), l}));
      std::vector<float> uk_t(static_cast<size_t>(h * l * dn)), uv;
      for (int64_t head = 0; head < h; ++head) {
        const float* uk = kv_b.data() + head * (dn + dv) * l;
        for (int64_t r = 0; r < dn; ++r) {
          for (int64_t col = 0; col < l; ++col) uk_t[(head * l + col) * dn + r] = uk[r * l + col];
        }
        const auto v = TakeRows(kv_b, l, head * (dn + dv) + dn, dv);
        uv.insert(uv.end(), v.begin(), v.end());
      }
      ASSIGN_OR_RETURN(w.uk_t, loader.Upload(uk_t, {h, l, dn}));
      ASSIGN_OR_RETURN(w.uv, loader.Upload(uv, {h, dv, l}));
      ASSIGN_OR_RETURN(w.o, loader.Load(p + "o_proj.weight", {d, h * dv}));
    }
    return absl::OkStatus();
  }

  KvCacheSpec kv_cache_spec() const override {
    const ModelConfig& c = config_;
    return {c.num_hidden_layers,
            (c.kv_lora_rank + c.qk_rope_head_dim) * static_cast<int64_t>(DTypeSize(backend()->activation_dtype()))};
  }

 protected:
  absl::Status AllocateLayerCaches(int32_t num_blocks, int32_t block_size) override {
    const ModelConfig& c = config_;
    for (MlaWeights& w : attention_) w.cache = Tensor();
    for (MlaWeights& w : attention_) {
      ASSIGN_OR_RETURN(w.cache, backend()->Allocate(backend()->activation_dtype(),
                                                    {num_blocks, block_size, c.kv_lora_rank + c.qk_rope_head_dim}));
      RETURN_IF_ERROR(backend()->Zero(w.cache));
    }
    return absl::OkStatus();
  }

  absl::Status Attention(int layer, const StepContext& ctx, const Tensor& x, const Tensor& out) override {
    const ModelConfig& c = config_;
    const MlaWeights& w = attention_[layer];
    Backend* b = backend();
    const DType act = b->activation_dtype();
    // The latent norms are built without the config's eps in DeepSeek's code: always 1e-6.
    constexpr float kLatentNormEps = 1e-6f;
    const int64_t t = ctx.num_tokens, h = c.num_attention_heads;
    const int64_t dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim, l = c.kv_lora_rank;

    Tensor q_in = x;
    if (w.q_a.defined()) {
      ASSIGN_OR_RETURN(q_in, b->Allocate(act, {t, c.q_lora_rank}));
      RETURN_IF_ERROR(b->Linear(x, w.q_a, Tensor(), q_in));
      RETURN_IF_ERROR(b->RmsNorm(q_in, w.q_a_norm, kLatentNormEps, q_in));
    }
    ASSIGN_OR_RETURN(Tensor q_nope, b->Allocate(act, {t, h, dn}));
    ASSIGN_OR_RETURN(Tensor q_pe, b->Allocate(act, {t, h, dr}));
    RETURN_IF_ERROR(b->Linear(q_in, w.q_nope, Tensor(), q_nope.View({t, h * dn})));
    RETURN_IF_ERROR(b->Linear(q_in, w.q_pe, Tensor(), q_pe.View({t, h * dr})));

    ASSIGN_OR_RETURN(Tensor kv_c, b->Allocate(act, {t, l}));
    ASSIGN_OR_RETURN(Tensor k_pe, b->Allocate(act, {t, dr}));
    RETURN_IF_ERROR(b->Linear(x, w.kv_a, Tensor(), kv_c));
    RETURN_IF_ERROR(b->Linear(x, w.k_pe, Tensor(), k_pe));
    RETURN_IF_ERROR(b->RmsNorm(kv_c, w.kv_a_norm, kLatentNormEps, kv_c));

    const int32_t rot = static_cast<int32_t>(dr);
    RETURN_IF_ERROR(b->Rope(q_pe, ctx.positions, rope_cos_sin(), rot, RopeStyle::kInterleaved));
    // The rope key is only read back from the cache: rotate it on its way in (one op, no k_pe
    // round trip).
    RETURN_IF_ERROR(b->RopeWriteMlaCache(kv_c, k_pe, ctx.positions, rope_cos_sin(),
                                         RopeStyle::kInterleaved, ctx.attention, w.cache));

    ASSIGN_OR_RETURN(Tensor q_latent, b->Allocate(act, {t, h, l}));
    RETURN_IF_ERROR(b->HeadwiseLinear(q_nope, w.uk_t, q_latent));
    ASSIGN_OR_RETURN(Tensor latent_out, b->Allocate(act, {t, h, l}));
    RETURN_IF_ERROR(b->PagedMlaAttention(q_latent, q_pe, w.cache, ctx.attention,
                                         static_cast<float>(c.AttentionScale()), latent_out));
    ASSIGN_OR_RETURN(Tensor heads, b->Allocate(act, {t, h, dv}));
    RETURN_IF_ERROR(b->HeadwiseLinear(latent_out, w.uv, heads));
    return b->Linear(heads.View({t, h * dv}), w.o, Tensor(), out);
  }

 private:
  struct MlaWeights {
    Tensor q_a, q_a_norm;  // [q_lora, d], [q_lora]; empty without query compression
    Tensor q_nope, q_pe;   // [H·dn, q_in], [H·dr, q_in]
    Tensor kv_a, k_pe;     // [L, d], [dr, d]
    Tensor kv_a_norm;      // [L]
    Tensor uk_t;           // [H, L, dn]: W_UK transposed per head
    Tensor uv;             // [H, dv, L]
    Tensor o;              // [d, H·dv]
    Tensor cache;          // [NB, BS, L + dr]
  };
  std::vector<MlaWeights> attention_;  // per layer
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadDeepseek(const ModelConfig& config, const Checkpoint& checkpoint,
                                                    Backend* backend, int64_t max_model_len) {
  if (config.num_nextn_predict_layers > 0) {
    MS_LOG(INFO) << "skipping " << config.num_nextn_predict_layers
                 << " multi-token-prediction layer(s): not used for generation";
  }
  auto model = std::make_unique<DeepseekModel>(config, backend, max_model_len);
  WeightLoader loader(&checkpoint, backend);
  RETURN_IF_ERROR(model->Load(loader));
  return model;
}

}  // namespace moeserve

// Llama-family attention: LlamaForCausalLM (GQA, tied embeddings, llama3/linear rope scaling),
// Qwen2ForCausalLM (q/k/v biases) and MixtralForCausalLM (the same attention; MoE FFN in
// DecoderModel). Rotary embedding in the rotate-half (NeoX) layout, as Hugging Face stores them.

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/decoder_model.h"

namespace moeserve {
namespace {

class LlamaModel final : public DecoderModel {
 public:
  LlamaModel(ModelConfig config, Backend* backend, int64_t max_model_len)
      : DecoderModel(std::move(config), backend, max_model_len) {}

  absl::Status Load(WeightLoader& loader) {
    RETURN_IF_ERROR(LoadShared(loader));
    const ModelConfig& c = config_;
    const int64_t d = c.hidden_size, h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
    attention_.resize(c.num_hidden_layers);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      AttentionWeights& w = attention_[i];
      const std::string p = absl::StrCat("model.layers.", i, ".self_attn.");
      ASSIGN_OR_RETURN(w.q, loader.Load(p + "q_proj.weight", {h * hd, d}));
      ASSIGN_OR_RETURN(w.k, loader.Load(p + "k_proj.weight", {kv * hd, d}));
      ASSIGN_OR_RETURN(w.v, loader.Load(p + "v_proj.weight", {kv * hd, d}));
      ASSIGN_OR_RETURN(w.o, loader.Load(p + "o_proj.weight", {d, h * hd}));
      if (c.attention_bias) {
        ASSIGN_OR_RETURN(w.q_bias, loader.Load(p + "q_proj.bias", {h * hd}));
        ASSIGN_OR_RETURN(w.k_bias, loader.Load(p + "k_proj.bias", {kv * hd}));
        ASSIGN_OR_RETURN(w.v_bias, loader.Load(p + "v_proj.bias", {kv * hd}));
      }
    }
    return absl::OkStatus();
  }

  KvCacheSpec kv_cache_spec() const override {
    const ModelConfig& c = config_;
    return {c.num_hidden_layers,
            2 * c.num_key_value_heads * c.head_dim * static_cast<int64_t>(DTypeSize(backend()->activation_dtype()))};
  }

 protected:
  absl::Status AllocateLayerCaches(int32_t num_blocks, int32_t block_size) override {
    const ModelConfig& c = config_;
    const DType act = backend()->activation_dtype();
    for (AttentionWeights& w : attention_) {
      w.k_cache = Tensor();
      w.v_cache = Tensor();
    }
    for (AttentionWeights& w : attention_) {
      const Shape shape{num_blocks, block_size, c.num_key_value_heads, c.head_dim};
      ASSIGN_OR_RETURN(w.k_cache, backend()->Allocate(act, shape));
      ASSIGN_OR_RETURN(w.v_cache, backend()->Allocate(act, shape));
      RETURN_IF_ERROR(backend()->Zero(w.k_cache));
      RETURN_IF_ERROR(backend()->Zero(w.v_cache));
    }
    return absl::OkStatus();
  }

  absl::Status Attention(int layer, const StepContext& ctx, const Tensor& x, const Tensor& out) override {
    const ModelConfig& c = config_;
    const AttentionWeights& w = attention_[layer];
    Backend* b = backend();
    const DType act = b->activation_dtype();
    const int64_t t = ctx.num_tokens, h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
    ASSIGN_OR_RETURN(Tensor q, b->Allocate(act, {t, h, hd}));
    ASSIGN_OR_RETURN(Tensor k, b->Allocate(act, {t, kv, hd}));
    ASSIGN_OR_RETURN(Tensor v, b->Allocate(act, {t, kv, hd}));
    RETURN_IF_ERROR(b->Linear(x, w.q, w.q_bias, q.View({t, h * hd})));
    RETURN_IF_ERROR(b->Linear(x, w.k, w.k_bias, k.View({t, kv * hd})));
    RETURN_IF_ERROR(b->Linear(x, w.v, w.v_bias, v.View({t, kv * hd})));
    RETURN_IF_ERROR(b->RopeWriteKvCache(q, k, v, ctx.positions, rope_cos_sin(), static_cast<int32_t>(hd),
                                        RopeStyle::kNeox, ctx.attention, w.k_cache, w.v_cache));
    ASSIGN_OR_RETURN(Tensor attn, b->Allocate(act, {t, h, hd}));
    RETURN_IF_ERROR(b->PagedAttention(q, w.k_cache, w.v_cache, ctx.attention,
                                      static_cast<float>(c.AttentionScale()), attn));
    return b->Linear(attn.View({t, h * hd}), w.o, Tensor(), out);
  }

 private:
  struct AttentionWeights {
    Tensor q, k, v, o;                // [H·D, d], [Hkv·D, d], [Hkv·D, d], [d, H·D]
    Tensor q_bias, k_bias, v_bias;    // Qwen2
    Tensor k_cache, v_cache;          // [NB, BS, Hkv, D]
  };
  std::vector<AttentionWeights> attention_;  // per layer
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadLlamaFamily(const ModelConfig& config, const Checkpoint& checkpoint,
                                                       Backend* backend, int64_t max_model_len) {
  auto model = std::make_unique<LlamaModel>(config, backend, max_model_len);
  WeightLoader loader(&checkpoint, backend);
  RETURN_IF_ERROR(model->Load(loader));
  return model;
}

}  // namespace moeserve

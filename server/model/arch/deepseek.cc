// DeepseekV2ForCausalLM and DeepseekV3ForCausalLM: multi-head latent attention (mla_attention.h)
// and MoE layers from first_k_dense_replace on (every moe_layer_freq-th), routed experts plus
// always-on shared experts.
//
// Routing: V2 softmax scores, greedy or group_limited_greedy (group score = max), weights scaled by
// routed_scaling_factor, or renormalised instead with norm_topk_prob (DeepSeek's own code); V3
// sigmoid scores + e_score_correction_bias for the choice (noaux_tc, group score = sum of the top
// 2), weights renormalised and scaled. RoPE on adjacent pairs (V3: unless rope_interleave is
// false); YaRN's mscale² multiplies the softmax scale. The multi-token-prediction module
// (num_nextn_predict_layers, stored as layer num_hidden_layers; V3 ships one) is loaded only for
// MTP speculative decoding (mtp_module.h); further MTP modules are never used.

#include <cmath>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/model/arch/families.h"
#include "server/model/config_limits.h"
#include "server/model/hf_tensors.h"

namespace moeserve {
namespace {

class Deepseek final : public Architecture {
 public:
  explicit Deepseek(bool v3) : v3_(v3) {}

  std::string_view name() const override { return v3_ ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"; }

  absl::Status ParseConfig(const ConfigFields& f, ModelConfig& c) const override {
    ASSIGN_OR_RETURN(c.num_experts, f.Int("n_routed_experts", 0));
    ASSIGN_OR_RETURN(c.num_experts_per_tok, f.Int("num_experts_per_tok", 0));
    ASSIGN_OR_RETURN(c.moe_intermediate_size, f.Int("moe_intermediate_size", 0));
    ASSIGN_OR_RETURN(c.n_shared_experts, f.Int("n_shared_experts", 0));
    ASSIGN_OR_RETURN(c.first_k_dense_replace, f.Int("first_k_dense_replace", 0));
    ASSIGN_OR_RETURN(int64_t moe_layer_freq, f.Int("moe_layer_freq", 1));
    ASSIGN_OR_RETURN(c.q_lora_rank, f.Int("q_lora_rank", 0));
    ASSIGN_OR_RETURN(c.kv_lora_rank, f.Int("kv_lora_rank", std::nullopt));
    ASSIGN_OR_RETURN(c.qk_nope_head_dim, f.Int("qk_nope_head_dim", std::nullopt));
    ASSIGN_OR_RETURN(c.qk_rope_head_dim, f.Int("qk_rope_head_dim", std::nullopt));
    ASSIGN_OR_RETURN(c.v_head_dim, f.Int("v_head_dim", std::nullopt));
    ASSIGN_OR_RETURN(c.num_nextn_predict_layers, f.Int("num_nextn_predict_layers", 0));
    for (auto [name, v] : {std::pair{"kv_lora_rank", c.kv_lora_rank}, std::pair{"qk_rope_head_dim", c.qk_rope_head_dim},
                           std::pair{"qk_nope_head_dim", c.qk_nope_head_dim}, std::pair{"v_head_dim", c.v_head_dim}}) {
      if (v <= 0) return f.Invalid(absl::StrCat("\"", name, "\" must be positive, got ", v));
      // Checked here, not only in Validate: head_dim is their sum below.
      if (v > ModelConfigLimits::kMaxLoraRank) {
        return f.Invalid(absl::StrCat("\"", name, "\" is ", v, ", more than moeserve supports (",
                                      ModelConfigLimits::kMaxLoraRank, ")"));
      }
    }
    if (c.qk_rope_head_dim % 2 != 0) return f.Invalid("qk_rope_head_dim must be even");

    // transformers writes head_dim = qk_rope_head_dim for DeepSeek: the attention head is nope + rope.
    c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
    c.num_key_value_heads = c.num_attention_heads;
    c.rotary_dim = c.qk_rope_head_dim;
    ASSIGN_OR_RETURN(bool interleave, f.Bool("rope_interleave", true));
    c.rope_style = !v3_ || interleave ? RopeStyle::kInterleaved : RopeStyle::kNeox;
    c.attention_scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    if (c.rope.type != RopeConfig::Type::kDefault && c.rope.mscale_all_dim != 0.0 && c.rope.factor > 1.0) {
      const double m = 0.1 * c.rope.mscale_all_dim * std::log(c.rope.factor) + 1.0;
      c.attention_scale *= m * m;
    }

    if (c.num_experts > 0) {
      if (c.moe_intermediate_size <= 0) return f.Missing("moe_intermediate_size");
      const auto is_moe = [&](int64_t i) {
        return i >= c.first_k_dense_replace && i % std::max<int64_t>(1, moe_layer_freq) == 0;
      };
      for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.moe_layers[i] = is_moe(i);
      c.mtp_moe = is_moe(c.num_hidden_layers);
      ASSIGN_OR_RETURN(c.routing, ParseRouting(f, c.num_experts_per_tok));
    }
    if ((c.first_k_dense_replace > 0 || c.num_experts == 0) && c.intermediate_size <= 0) {
      return f.Missing("intermediate_size");
    }
    return absl::OkStatus();
  }

  DecoderTensors Tensors(const ModelConfig& c) const override {
    DecoderTensors t = HfDecoderTensors(c);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) FillLayer(c, i, c.IsMoeLayer(i), t.layers[i]);
    if (c.num_nextn_predict_layers > 0) {
      // The MTP module, layer L = num_hidden_layers. Its embed_tokens and shared_head.head copy the
      // main model's; the head is read when present.
      const int64_t d = c.hidden_size, l = c.num_hidden_layers;
      const std::string p = HfLayerPrefix(l) + ".";
      MtpTensors& m = t.mtp.emplace();
      m.enorm = {p + "enorm.weight", {d}, WeightSpec::Kind::kNorm};
      m.hnorm = {p + "hnorm.weight", {d}, WeightSpec::Kind::kNorm};
      m.eh_proj = {p + "eh_proj.weight", {d, 2 * d}, WeightSpec::Kind::kLinear};
      m.head_norm = {p + "shared_head.norm.weight", {d}, WeightSpec::Kind::kNorm};
      m.head = WeightSpec{p + "shared_head.head.weight", {c.vocab_size, d}, WeightSpec::Kind::kEmbedding};
      m.layer = HfLayerNorms(c, l);
      FillLayer(c, l, c.mtp_moe, m.layer);
    }
    return t;
  }

  absl::StatusOr<std::unique_ptr<Model>> Load(const ModelConfig& c, WeightLoader& loader, int64_t max_model_len,
                                              bool load_mtp) const override {
    if (c.num_nextn_predict_layers > 0 && !load_mtp) {
      MS_LOG(INFO) << "skipping " << c.num_nextn_predict_layers
                   << " multi-token-prediction layer(s): loaded only for --speculative-method mtp";
    }
    return Architecture::Load(c, loader, max_model_len, load_mtp);
  }

 private:
  absl::StatusOr<MoeRoutingParams> ParseRouting(const ConfigFields& f, int64_t top_k) const {
    MoeRoutingParams r;
    r.top_k = static_cast<int32_t>(top_k);
    ASSIGN_OR_RETURN(std::string scoring, f.String("scoring_func", v3_ ? "sigmoid" : "softmax"));
    if (scoring == "softmax")
      r.scoring = MoeScoring::kSoftmax;
    else if (scoring == "sigmoid")
      r.scoring = MoeScoring::kSigmoid;
    else
      return f.Wrong("scoring_func", "\"softmax\" or \"sigmoid\"");
    ASSIGN_OR_RETURN(std::string method, f.String("topk_method", v3_ ? "noaux_tc" : "greedy"));
    if (method == "greedy")
      r.method = MoeTopkMethod::kGreedy;
    else if (method == "group_limited_greedy")
      r.method = MoeTopkMethod::kGroupLimitedGreedy;
    else if (method == "noaux_tc")
      r.method = MoeTopkMethod::kNoAuxTc;
    else
      return f.Wrong("topk_method", "\"greedy\", \"group_limited_greedy\" or \"noaux_tc\"");
    ASSIGN_OR_RETURN(int64_t n_group, f.Int("n_group", v3_ ? 8 : 1));
    ASSIGN_OR_RETURN(int64_t topk_group, f.Int("topk_group", v3_ ? 4 : 1));
    r.n_group = static_cast<int32_t>(n_group);
    r.topk_group = static_cast<int32_t>(topk_group);
    ASSIGN_OR_RETURN(double scale, f.Double("routed_scaling_factor", v3_ ? 2.5 : 1.0));
    r.routed_scaling_factor = static_cast<float>(scale);
    ASSIGN_OR_RETURN(r.norm_topk_prob, f.Bool("norm_topk_prob", v3_));
    if (!v3_ && r.norm_topk_prob && top_k > 1) {
      // DeepSeek-V2's reference code renormalises *instead of* scaling.
      r.routed_scaling_factor = 1.0f;
    }
    return r;
  }

  static void FillLayer(const ModelConfig& c, int64_t i, bool moe, LayerTensors& layer) {
    layer.attention = HfMlaTensors(c, i);
    if (moe) {
      layer.ffn = HfMoeTensors(c, i);
    } else {
      layer.ffn = HfMlpTensors(HfLayerPrefix(i) + ".mlp", c.hidden_size, c.intermediate_size);
    }
  }

  bool v3_;
};

}  // namespace

std::unique_ptr<Architecture> NewDeepseekV2Architecture() { return std::make_unique<Deepseek>(/*v3=*/false); }
std::unique_ptr<Architecture> NewDeepseekV3Architecture() { return std::make_unique<Deepseek>(/*v3=*/true); }

}  // namespace moeserve

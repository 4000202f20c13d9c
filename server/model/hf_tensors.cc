#include "server/model/hf_tensors.h"

#include "absl/strings/str_cat.h"

namespace moeserve {

using Kind = WeightSpec::Kind;

std::string HfLayerPrefix(int64_t layer) { return absl::StrCat("model.layers.", layer); }

DecoderTensors HfDecoderTensors(const ModelConfig& c) {
  const int64_t d = c.hidden_size;
  DecoderTensors t;
  t.embed = {"model.embed_tokens.weight", {c.vocab_size, d}, Kind::kEmbedding};
  t.final_norm = {"model.norm.weight", {d}, Kind::kNorm};
  if (!c.tie_word_embeddings) t.lm_head = WeightSpec{"lm_head.weight", {c.vocab_size, d}, Kind::kEmbedding};
  t.layers.reserve(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) t.layers.push_back(HfLayerNorms(c, i));
  return t;
}

LayerTensors HfLayerNorms(const ModelConfig& c, int64_t layer) {
  const std::string p = HfLayerPrefix(layer);
  LayerTensors t;
  t.input_norm = {p + ".input_layernorm.weight", {c.hidden_size}, Kind::kNorm};
  t.post_attention_norm = {p + ".post_attention_layernorm.weight", {c.hidden_size}, Kind::kNorm};
  return t;
}

GqaTensors HfGqaTensors(const ModelConfig& c, int64_t layer, HfGqaOptions options) {
  const int64_t d = c.hidden_size, h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  const std::string p = HfLayerPrefix(layer) + ".self_attn.";
  GqaTensors t;
  t.q = {p + "q_proj.weight", {h * hd, d}, Kind::kLinear};
  t.k = {p + "k_proj.weight", {kv * hd, d}, Kind::kLinear};
  t.v = {p + "v_proj.weight", {kv * hd, d}, Kind::kLinear};
  t.o = {p + "o_proj.weight", {d, h * hd}, Kind::kLinear};
  if (options.bias) {
    t.q_bias = WeightSpec{p + "q_proj.bias", {h * hd}, Kind::kBias};
    t.k_bias = WeightSpec{p + "k_proj.bias", {kv * hd}, Kind::kBias};
    t.v_bias = WeightSpec{p + "v_proj.bias", {kv * hd}, Kind::kBias};
  }
  if (options.o_bias) t.o_bias = WeightSpec{p + "o_proj.bias", {d}, Kind::kBias};
  if (options.qk_norm) {
    t.q_norm = WeightSpec{p + "q_norm.weight", {hd}, Kind::kNorm};
    t.k_norm = WeightSpec{p + "k_norm.weight", {hd}, Kind::kNorm};
  }
  return t;
}

MlaTensors HfMlaTensors(const ModelConfig& c, int64_t layer) {
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  const int64_t dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim, l = c.kv_lora_rank;
  const std::string p = HfLayerPrefix(layer) + ".self_attn.";
  MlaTensors t;
  if (c.q_lora_rank > 0) {
    t.q_a = WeightSpec{p + "q_a_proj.weight", {c.q_lora_rank, d}, Kind::kLinear};
    t.q_a_norm = WeightSpec{p + "q_a_layernorm.weight", {c.q_lora_rank}, Kind::kNorm};
    t.q = {p + "q_b_proj.weight", {h * (dn + dr), c.q_lora_rank}, Kind::kLinear};
  } else {
    t.q = {p + "q_proj.weight", {h * (dn + dr), d}, Kind::kLinear};
  }
  t.kv_a = {p + "kv_a_proj_with_mqa.weight", {l + dr, d}, Kind::kLinear};
  t.kv_a_norm = {p + "kv_a_layernorm.weight", {l}, Kind::kNorm};
  t.kv_b = {p + "kv_b_proj.weight", {h * (dn + dv), l}, Kind::kLinear};
  t.o = {p + "o_proj.weight", {d, h * dv}, Kind::kLinear};
  return t;
}

MlpTensors HfMlpTensors(const std::string& prefix, int64_t hidden, int64_t intermediate) {
  return {{prefix + ".gate_proj.weight", {intermediate, hidden}, Kind::kLinear},
          {prefix + ".up_proj.weight", {intermediate, hidden}, Kind::kLinear},
          {prefix + ".down_proj.weight", {hidden, intermediate}, Kind::kLinear}};
}

MoeTensors HfMoeTensors(const ModelConfig& c, int64_t layer) {
  const int64_t d = c.hidden_size, e_count = c.num_experts, i = c.moe_intermediate_size;
  const std::string m = HfLayerPrefix(layer) + ".mlp";
  MoeTensors t;
  t.router = {m + ".gate.weight", {e_count, d}, Kind::kRouter};
  if (c.routing.method == MoeTopkMethod::kNoAuxTc) {
    t.correction_bias = WeightSpec{m + ".gate.e_score_correction_bias", {e_count}, Kind::kCorrectionBias};
  }
  for (int64_t e = 0; e < e_count; ++e) t.experts.push_back(HfMlpTensors(absl::StrCat(m, ".experts.", e), d, i));
  t.fused_gate_up = WeightSpec{m + ".experts.gate_up_proj", {e_count, 2 * i, d}, Kind::kLinear};
  t.fused_down = WeightSpec{m + ".experts.down_proj", {e_count, d, i}, Kind::kLinear};
  if (c.n_shared_experts > 0) t.shared = HfMlpTensors(m + ".shared_experts", d, i * c.n_shared_experts);
  return t;
}

}  // namespace moeserve

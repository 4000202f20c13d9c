#include "server/model/weight_names.h"

#include "absl/strings/str_cat.h"

namespace moeserve {
namespace {

using Kind = WeightSpec::Kind;

void AddMlp(std::vector<WeightSpec>& out, const std::string& p, int64_t d, int64_t i, bool mixtral_names) {
  out.push_back({absl::StrCat(p, mixtral_names ? ".w1" : ".gate_proj", ".weight"), {i, d}, Kind::kLinear});
  out.push_back({absl::StrCat(p, mixtral_names ? ".w3" : ".up_proj", ".weight"), {i, d}, Kind::kLinear});
  out.push_back({absl::StrCat(p, mixtral_names ? ".w2" : ".down_proj", ".weight"), {d, i}, Kind::kLinear});
}

}  // namespace

std::vector<WeightSpec> CheckpointWeights(const ModelConfig& c) {
  std::vector<WeightSpec> out;
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, d}, Kind::kEmbedding});
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const std::string p = absl::StrCat("model.layers.", layer);
    out.push_back({p + ".input_layernorm.weight", {d}, Kind::kNorm});
    const std::string a = p + ".self_attn.";
    if (c.uses_mla()) {
      const int64_t dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim, l = c.kv_lora_rank;
      if (c.q_lora_rank > 0) {
        out.push_back({a + "q_a_proj.weight", {c.q_lora_rank, d}, Kind::kLinear});
        out.push_back({a + "q_a_layernorm.weight", {c.q_lora_rank}, Kind::kNorm});
        out.push_back({a + "q_b_proj.weight", {h * (dn + dr), c.q_lora_rank}, Kind::kLinear});
      } else {
        out.push_back({a + "q_proj.weight", {h * (dn + dr), d}, Kind::kLinear});
      }
      out.push_back({a + "kv_a_proj_with_mqa.weight", {l + dr, d}, Kind::kLinear});
      out.push_back({a + "kv_a_layernorm.weight", {l}, Kind::kNorm});
      out.push_back({a + "kv_b_proj.weight", {h * (dn + dv), l}, Kind::kLinear});
      out.push_back({a + "o_proj.weight", {d, h * dv}, Kind::kLinear});
    } else {
      const int64_t kv = c.num_key_value_heads, hd = c.head_dim;
      out.push_back({a + "q_proj.weight", {h * hd, d}, Kind::kLinear});
      out.push_back({a + "k_proj.weight", {kv * hd, d}, Kind::kLinear});
      out.push_back({a + "v_proj.weight", {kv * hd, d}, Kind::kLinear});
      if (c.attention_bias) {
        out.push_back({a + "q_proj.bias", {h * hd}, Kind::kBias});
        out.push_back({a + "k_proj.bias", {kv * hd}, Kind::kBias});
        out.push_back({a + "v_proj.bias", {kv * hd}, Kind::kBias});
      }
      out.push_back({a + "o_proj.weight", {d, h * hd}, Kind::kLinear});
    }
    out.push_back({p + ".post_attention_layernorm.weight", {d}, Kind::kNorm});
    if (c.IsMoeLayer(layer)) {
      const bool mixtral = c.architecture == Architecture::kMixtral;
      const std::string m = p + (mixtral ? ".block_sparse_moe" : ".mlp");
      out.push_back({m + ".gate.weight", {c.num_experts, d}, Kind::kRouter});
      if (c.routing.method == MoeTopkMethod::kNoAuxTc) {
        out.push_back({m + ".gate.e_score_correction_bias", {c.num_experts}, Kind::kCorrectionBias});
      }
      for (int64_t e = 0; e < c.num_experts; ++e) {
        AddMlp(out, absl::StrCat(m, ".experts.", e), d, c.moe_intermediate_size, mixtral);
      }
      if (c.n_shared_experts > 0) {
        AddMlp(out, m + ".shared_experts", d, c.moe_intermediate_size * c.n_shared_experts, false);
      }
    } else {
      AddMlp(out, p + ".mlp", d, c.intermediate_size, false);
    }
  }
  out.push_back({"model.norm.weight", {d}, Kind::kNorm});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, d}, Kind::kEmbedding});
  return out;
}

}  // namespace moeserve

// MixtralForCausalLM: Llama's attention; every layer's FFN is num_local_experts SwiGLU experts,
// softmax over all router logits, greedy top-k renormalised to sum 1, no shared expert. Hub
// checkpoints name the FFN `block_sparse_moe` with experts w1 (gate), w3 (up), w2 (down);
// transformers 5 renames the module `mlp` and fuses the experts (accepted at load).

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/arch/families.h"
#include "server/model/arch/sliding_window.h"
#include "server/model/hf_tensors.h"

namespace moeserve {
namespace {

using Kind = WeightSpec::Kind;

class Mixtral final : public Architecture {
 public:
  std::string_view name() const override { return "MixtralForCausalLM"; }

  absl::Status ParseConfig(const ConfigFields& f, ModelConfig& c) const override {
    RETURN_IF_ERROR(RejectMistralSlidingWindow(f, c));
    ASSIGN_OR_RETURN(c.num_experts, f.Int("num_local_experts", std::nullopt));
    ASSIGN_OR_RETURN(c.num_experts_per_tok, f.Int("num_experts_per_tok", 2));
    c.moe_intermediate_size = c.intermediate_size;
    c.routing = {.top_k = static_cast<int32_t>(c.num_experts_per_tok),
                 .scoring = MoeScoring::kSoftmax,
                 .method = MoeTopkMethod::kGreedy,
                 .norm_topk_prob = true};
    c.moe_layers.assign(c.moe_layers.size(), true);
    return absl::OkStatus();
  }

  DecoderTensors Tensors(const ModelConfig& c) const override {
    const int64_t d = c.hidden_size, e_count = c.num_experts, inter = c.moe_intermediate_size;
    DecoderTensors t = HfDecoderTensors(c);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      t.layers[i].attention = HfGqaTensors(c, i, {});
      const std::string m = HfLayerPrefix(i) + ".block_sparse_moe";
      const std::string tf5 = HfLayerPrefix(i) + ".mlp";  // transformers 5's module name
      MoeTensors moe;
      moe.router = {m + ".gate.weight", {e_count, d}, Kind::kRouter, {tf5 + ".gate.weight"}};
      for (int64_t e = 0; e < e_count; ++e) {
        const std::string p = absl::StrCat(m, ".experts.", e);
        moe.experts.push_back({{p + ".w1.weight", {inter, d}, Kind::kLinear},
                               {p + ".w3.weight", {inter, d}, Kind::kLinear},
                               {p + ".w2.weight", {d, inter}, Kind::kLinear}});
      }
      moe.fused_gate_up = WeightSpec{tf5 + ".experts.gate_up_proj", {e_count, 2 * inter, d}, Kind::kLinear};
      moe.fused_down = WeightSpec{tf5 + ".experts.down_proj", {e_count, d, inter}, Kind::kLinear};
      t.layers[i].ffn = std::move(moe);
    }
    return t;
  }
};

}  // namespace

std::unique_ptr<Architecture> NewMixtralArchitecture() { return std::make_unique<Mixtral>(); }

}  // namespace moeserve

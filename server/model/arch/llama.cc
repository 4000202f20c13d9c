// LlamaForCausalLM: grouped-query attention (q/k/v/o biases with attention_bias), SwiGLU MLP,
// optional tied embeddings; RoPE default/linear/llama3/yarn in the rotate-half layout.

#include "server/common/status_macros.h"
#include "server/model/arch/families.h"
#include "server/model/hf_tensors.h"

namespace moeserve {
namespace {

class Llama final : public Architecture {
 public:
  std::string_view name() const override { return "LlamaForCausalLM"; }

  absl::Status ParseConfig(const ConfigFields& f, ModelConfig& c) const override {
    ASSIGN_OR_RETURN(bool mlp_bias, f.Bool("mlp_bias", false));
    if (mlp_bias) return f.Invalid("mlp_bias is not supported");
    return absl::OkStatus();
  }

  DecoderTensors Tensors(const ModelConfig& c) const override {
    DecoderTensors t = HfDecoderTensors(c);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      t.layers[i].attention = HfGqaTensors(c, i, {.bias = c.attention_bias, .o_bias = c.attention_bias});
      t.layers[i].ffn = HfMlpTensors(HfLayerPrefix(i) + ".mlp", c.hidden_size, c.intermediate_size);
    }
    return t;
  }
};

}  // namespace

std::unique_ptr<Architecture> NewLlamaArchitecture() { return std::make_unique<Llama>(); }

}  // namespace moeserve

// Qwen2ForCausalLM: Llama's structure with q/k/v biases always (no o bias); sliding-window
// configurations are rejected.

#include "server/model/arch/families.h"
#include "server/model/arch/sliding_window.h"
#include "server/model/hf_tensors.h"

namespace moeserve {
namespace {

class Qwen2 final : public Architecture {
 public:
  std::string_view name() const override { return "Qwen2ForCausalLM"; }

  absl::Status ParseConfig(const ConfigFields& f, ModelConfig& c) const override {
    c.attention_bias = true;  // Qwen2's q/k/v always carry biases, whatever the config says
    return RejectQwenSlidingWindow(f, c);
  }

  DecoderTensors Tensors(const ModelConfig& c) const override {
    DecoderTensors t = HfDecoderTensors(c);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      t.layers[i].attention = HfGqaTensors(c, i, {.bias = true});
      t.layers[i].ffn = HfMlpTensors(HfLayerPrefix(i) + ".mlp", c.hidden_size, c.intermediate_size);
    }
    return t;
  }
};

}  // namespace

std::unique_ptr<Architecture> NewQwen2Architecture() { return std::make_unique<Qwen2>(); }

}  // namespace moeserve

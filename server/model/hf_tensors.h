#ifndef MOESERVE_SERVER_MODEL_HF_TENSORS_H_
#define MOESERVE_SERVER_MODEL_HF_TENSORS_H_

// The tensor names most Hugging Face decoder families share, for architectures to compose (an
// architecture with other names builds its DecoderTensors itself). Shapes follow the config.

#include <cstdint>
#include <string>

#include "server/model/config.h"
#include "server/model/decoder_tensors.h"

namespace moeserve {

// "model.layers.<layer>"
std::string HfLayerPrefix(int64_t layer);

// model.embed_tokens, model.norm, lm_head (absent when tied) and per layer
// model.layers.L.{input_layernorm,post_attention_layernorm}; the attention and FFN of every layer
// are left for the architecture to fill.
DecoderTensors HfDecoderTensors(const ModelConfig& config);

// model.layers.L.{input_layernorm,post_attention_layernorm}; attention and FFN left to fill.
LayerTensors HfLayerNorms(const ModelConfig& config, int64_t layer);

struct HfGqaOptions {
  bool bias = false;     // {q,k,v}_proj.bias
  bool o_bias = false;   // o_proj.bias
  bool qk_norm = false;  // q_norm.weight, k_norm.weight [head_dim]
};
// model.layers.L.self_attn.{q,k,v,o}_proj.weight (+ options).
GqaTensors HfGqaTensors(const ModelConfig& config, int64_t layer, HfGqaOptions options);

// DeepSeek's: model.layers.L.self_attn.{q_a_proj, q_a_layernorm, q_b_proj | q_proj,
// kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj}.weight.
MlaTensors HfMlaTensors(const ModelConfig& config, int64_t layer);

// <prefix>.{gate,up,down}_proj.weight of intermediate size `intermediate`.
MlpTensors HfMlpTensors(const std::string& prefix, int64_t hidden, int64_t intermediate);

// model.layers.L.mlp.gate.weight, mlp.experts.E.{gate,up,down}_proj.weight (and the fused
// mlp.experts.{gate_up,down}_proj transformers 5 keeps in memory), plus
// mlp.gate.e_score_correction_bias with noaux_tc routing and mlp.shared_experts.* when
// n_shared_experts > 0.
MoeTensors HfMoeTensors(const ModelConfig& config, int64_t layer);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_HF_TENSORS_H_

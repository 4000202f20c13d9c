#ifndef MOESERVE_SERVER_MODEL_DECODER_TENSORS_H_
#define MOESERVE_SERVER_MODEL_DECODER_TENSORS_H_

// The checkpoint tensors of the pre-norm decoder (decoder_model.h), block by block. An
// architecture (architecture.h) fills these with its names and shapes; DecoderModel loads them and
// make-model writes them, so every tensor name is written once: in the architecture's file, or in
// hf_tensors.cc for the names most Hugging Face families share.

#include <optional>
#include <variant>
#include <vector>

#include "server/model/weight_spec.h"

namespace moeserve {

// Multi-head attention with grouped K/V heads (Llama, Qwen, Mixtral): q [H·D, d], k and v
// [Hkv·D, d], o [d, H·D].
struct GqaTensors {
  WeightSpec q, k, v, o;
  std::optional<WeightSpec> q_bias, k_bias, v_bias;  // [H·D], [Hkv·D], [Hkv·D] (Qwen2)
  std::optional<WeightSpec> o_bias;                  // [d] (Llama with attention_bias)
  std::optional<WeightSpec> q_norm, k_norm;          // [D]: per-head RMSNorm before RoPE (Qwen3)
};

// DeepSeek's multi-head latent attention.
struct MlaTensors {
  std::optional<WeightSpec> q_a, q_a_norm;  // [q_lora, d], [q_lora]; absent without query compression
  WeightSpec q;                             // q_b_proj [H·(dn+dr), q_lora], or q_proj [H·(dn+dr), d]
  WeightSpec kv_a;                          // kv_a_proj_with_mqa [L + dr, d]
  WeightSpec kv_a_norm;                     // [L]
  WeightSpec kv_b;                          // [H·(dn+dv), L]
  WeightSpec o;                             // [d, H·dv]
};

// SwiGLU MLP: down(silu(gate(x)) · up(x)); gate and up [I, d], down [d, I].
struct MlpTensors {
  WeightSpec gate, up, down;
};

// Routed experts (+ always-on shared experts).
struct MoeTensors {
  WeightSpec router;                          // [E, d]
  std::optional<WeightSpec> correction_bias;  // [E]: noaux_tc routing (DeepSeek-V3)
  std::vector<MlpTensors> experts;            // one MLP per expert, as published on the hub
  // The same experts stacked, as transformers 5 holds them in memory: gate_up [E, 2I, d] (gate rows
  // then up rows), down [E, d, I]. Accepted at load in place of `experts`; never written.
  std::optional<WeightSpec> fused_gate_up, fused_down;
  std::optional<MlpTensors> shared;  // DeepSeek's shared experts: one MLP of intermediate n_shared · I
};

struct LayerTensors {
  WeightSpec input_norm, post_attention_norm;  // [d]
  std::variant<GqaTensors, MlaTensors> attention;
  std::variant<MlpTensors, MoeTensors> ffn;
};

// DeepSeek-V3's multi-token-prediction module (mtp_module.h): one more decoder layer fed by
// eh_proj(concat(enorm(embed(t)), hnorm(h))), with its own head.
struct MtpTensors {
  WeightSpec enorm, hnorm;         // [d]
  WeightSpec eh_proj;              // [d, 2d]
  WeightSpec head_norm;            // [d]
  std::optional<WeightSpec> head;  // [V, d]; the model's LM head when the checkpoint omits it
  LayerTensors layer;
};

struct DecoderTensors {
  WeightSpec embed;                   // [V, d]
  WeightSpec final_norm;              // [d]
  std::optional<WeightSpec> lm_head;  // [V, d]; absent when tied to the embedding
  std::vector<LayerTensors> layers;
  std::optional<MtpTensors> mtp;  // loaded only for MTP speculative decoding
};

// Every tensor a checkpoint holds, in a stable order (embedding, layers, final norm, LM head, MTP
// module); the load-only alternatives (MoeTensors' fused layout) are left out.
std::vector<WeightSpec> AllWeights(const DecoderTensors& tensors);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_DECODER_TENSORS_H_

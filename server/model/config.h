#ifndef MOESERVE_SERVER_MODEL_CONFIG_H_
#define MOESERVE_SERVER_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/backend/backend.h"

namespace moeserve {

class ArchitectureRegistry;

// Rotary embedding parameters (config.json `rope_theta` + `rope_scaling` / `rope_parameters`).
struct RopeConfig {
  enum class Type : uint8_t { kDefault, kLinear, kLlama3, kYarn };
  Type type = Type::kDefault;
  double theta = 10000.0;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;          // 0 = absent
  double mscale_all_dim = 0.0;  // 0 = absent
  std::optional<double> attention_factor;
  bool truncate = true;
};

// Everything the model code needs from a Hugging Face config.json, in the vocabulary every
// architecture shares: ParseModelConfig reads the common fields, the architecture's own parser
// (architecture.h) reads its family's fields into the sections below. Immutable after parsing.
struct ModelConfig {
  std::string architecture;  // config.json "architectures"[0], e.g. "Qwen3ForCausalLM"
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // dense MLP layers
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // query/key head size (MLA: qk_nope_head_dim + qk_rope_head_dim)
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases
  std::string hidden_act = "silu";
  std::string torch_dtype;  // as written, informational
  RopeConfig rope;
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;

  // Attention as the architecture runs it.
  int64_t rotary_dim = 0;  // leading dims of each head RoPE rotates
  RopeStyle rope_style = RopeStyle::kNeox;
  double attention_scale = 0.0;  // softmax scale (DeepSeek: includes YaRN's mscale²)

  // MoE (Mixtral, Qwen3-MoE, DeepSeek)
  int64_t num_experts = 0;  // routed experts; 0 = dense
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t n_shared_experts = 0;       // DeepSeek
  int64_t first_k_dense_replace = 0;  // DeepSeek
  MoeRoutingParams routing;
  std::vector<bool> moe_layers;  // [num_hidden_layers]: whether the layer's FFN is routed experts

  // MLA (DeepSeek)
  int64_t q_lora_rank = 0;  // 0 = no query compression
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t num_nextn_predict_layers = 0;
  bool mtp_moe = false;  // whether the MTP layer (index num_hidden_layers) has routed experts

  // FP8 block quantisation of the checkpoint (DeepSeek-V3): 0 = not quantised.
  int64_t fp8_block_rows = 0;
  int64_t fp8_block_cols = 0;

  // Whether decoder layer `layer` has a routed-expert FFN.
  bool IsMoeLayer(int64_t layer) const {
    return layer >= 0 && layer < static_cast<int64_t>(moe_layers.size()) && moe_layers[layer];
  }
};

// Parses config.json text. The architecture named by "architectures"[0] must be registered in
// `architectures` (default: the built-in ones, BuiltinArchitectures()). Unknown architectures and
// inconsistent sizes are InvalidArgument errors naming the field.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source_name);
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source_name,
                                             const ArchitectureRegistry& architectures);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir, const ArchitectureRegistry& architectures);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_CONFIG_H_

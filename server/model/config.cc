#include "server/model/config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/mapped_file.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

using Json = nlohmann::json;

// Typed access to optional config fields with errors that name the field.
class Fields {
 public:
  Fields(const Json& j, std::string_view source) : j_(j), source_(source) {}

  absl::StatusOr<int64_t> Int(const char* key, std::optional<int64_t> fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (fallback) return *fallback;
      return Missing(key);
    }
    if (!it->is_number_integer()) return Wrong(key, "an integer");
    return it->get<int64_t>();
  }
  absl::StatusOr<double> Double(const char* key, std::optional<double> fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (fallback) return *fallback;
      return Missing(key);
    }
    if (!it->is_number()) return Wrong(key, "a number");
    return it->get<double>();
  }
  absl::StatusOr<bool> Bool(const char* key, bool fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) return Wrong(key, "a boolean");
    return it->get<bool>();
  }
  absl::StatusOr<std::string> String(const char* key, std::string fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_string()) return Wrong(key, "a string");
    return it->get<std::string>();
  }

  absl::Status Missing(const char* key) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": missing required field \"", key, "\""));
  }
  absl::Status Wrong(const char* key, const char* what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": field \"", key, "\" must be ", what));
  }

 private:
  const Json& j_;
  std::string source_;
};

absl::StatusOr<Architecture> ParseArchitecture(const Json& j, const std::string& source) {
  auto it = j.find("architectures");
  if (it == j.end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": \"architectures\" must be a non-empty list of strings"));
  }
  const std::string name = (*it)[0].get<std::string>();
  for (Architecture a : {Architecture::kLlama, Architecture::kQwen2, Architecture::kMixtral,
                         Architecture::kDeepseekV2, Architecture::kDeepseekV3}) {
    if (name == ArchitectureName(a)) return a;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      source, ": unsupported architecture \"", name,
      "\" (supported: LlamaForCausalLM, Qwen2ForCausalLM, MixtralForCausalLM, "
      "DeepseekV2ForCausalLM, DeepseekV3ForCausalLM)"));
}

absl::Status ParseRope(const Json& j, const std::string& source, RopeConfig* rope) {
  const Fields f(j, source);
  // transformers 5 writes `rope_parameters` (holding rope_theta too); older files `rope_scaling`.
  const Json* params = nullptr;
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    auto it = j.find(key);
    if (it != j.end() && !it->is_null()) {
      if (!it->is_object()) return f.Wrong(key, "an object");
      params = &*it;
      break;
    }
  }
  ASSIGN_OR_RETURN(rope->theta, f.Double("rope_theta", 10000.0));
  if (params == nullptr) return absl::OkStatus();

  const std::string where = absl::StrCat(source, " rope scaling");
  const Fields p(*params, where);
  ASSIGN_OR_RETURN(rope->theta, p.Double("rope_theta", rope->theta));
  ASSIGN_OR_RETURN(std::string type, p.String("rope_type", ""));
  if (type.empty()) {
    ASSIGN_OR_RETURN(type, p.String("type", "default"));
  }
  if (type == "default") {
    rope->type = RopeConfig::Type::kDefault;
    return absl::OkStatus();
  }
  if (type == "linear") {
    rope->type = RopeConfig::Type::kLinear;
    ASSIGN_OR_RETURN(rope->factor, p.Double("factor", std::nullopt));
  } else if (type == "llama3") {
    rope->type = RopeConfig::Type::kLlama3;
    ASSIGN_OR_RETURN(rope->factor, p.Double("factor", std::nullopt));
    ASSIGN_OR_RETURN(rope->low_freq_factor, p.Double("low_freq_factor", std::nullopt));
    ASSIGN_OR_RETURN(rope->high_freq_factor, p.Double("high_freq_factor", std::nullopt));
    ASSIGN_OR_RETURN(rope->original_max_position_embeddings,
                     p.Int("original_max_position_embeddings", std::nullopt));
    if (rope->high_freq_factor <= rope->low_freq_factor) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": high_freq_factor must exceed low_freq_factor"));
    }
  } else if (type == "yarn") {
    rope->type = RopeConfig::Type::kYarn;
    ASSIGN_OR_RETURN(rope->original_max_position_embeddings,
                     p.Int("original_max_position_embeddings", std::nullopt));
    ASSIGN_OR_RETURN(rope->factor, p.Double("factor", 0.0));
    ASSIGN_OR_RETURN(rope->beta_fast, p.Double("beta_fast", 32.0));
    ASSIGN_OR_RETURN(rope->beta_slow, p.Double("beta_slow", 1.0));
    ASSIGN_OR_RETURN(rope->mscale, p.Double("mscale", 0.0));
    ASSIGN_OR_RETURN(rope->mscale_all_dim, p.Double("mscale_all_dim", 0.0));
    ASSIGN_OR_RETURN(rope->truncate, p.Bool("truncate", true));
    if (params->contains("attention_factor") && !(*params)["attention_factor"].is_null()) {
      ASSIGN_OR_RETURN(double af, p.Double("attention_factor", std::nullopt));
      rope->attention_factor = af;
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": unsupported rope type \"", type, "\" (default, linear, llama3, yarn)"));
  }
  if (!(rope->factor > 0.0) && type != "yarn") {
    return absl::InvalidArgumentError(absl::StrCat(where, ": factor must be positive"));
  }
  return absl::OkStatus();
}

absl::StatusOr<MoeRoutingParams> ParseRouting(const Fields& f, Architecture arch, int64_t top_k) {
  MoeRoutingParams r;
  r.top_k = static_cast<int32_t>(top_k);
  if (arch == Architecture::kMixtral) {
    r.scoring = MoeScoring::kSoftmax;
    r.method = MoeTopkMethod::kGreedy;
    r.norm_topk_prob = true;
    return r;
  }
  const bool v3 = arch == Architecture::kDeepseekV3;
  ASSIGN_OR_RETURN(std::string scoring, f.String("scoring_func", v3 ? "sigmoid" : "softmax"));
  if (scoring == "softmax") r.scoring = MoeScoring::kSoftmax;
  else if (scoring == "sigmoid") r.scoring = MoeScoring::kSigmoid;
  else return f.Wrong("scoring_func", "\"softmax\" or \"sigmoid\"");
  ASSIGN_OR_RETURN(std::string method, f.String("topk_method", v3 ? "noaux_tc" : "greedy"));
  if (method == "greedy") r.method = MoeTopkMethod::kGreedy;
  else if (method == "group_limited_greedy") r.method = MoeTopkMethod::kGroupLimitedGreedy;
  else if (method == "noaux_tc") r.method = MoeTopkMethod::kNoAuxTc;
  else return f.Wrong("topk_method", "\"greedy\", \"group_limited_greedy\" or \"noaux_tc\"");
  ASSIGN_OR_RETURN(int64_t n_group, f.Int("n_group", v3 ? 8 : 1));
  ASSIGN_OR_RETURN(int64_t topk_group, f.Int("topk_group", v3 ? 4 : 1));
  r.n_group = static_cast<int32_t>(n_group);
  r.topk_group = static_cast<int32_t>(topk_group);
  ASSIGN_OR_RETURN(double scale, f.Double("routed_scaling_factor", v3 ? 2.5 : 1.0));
  r.routed_scaling_factor = static_cast<float>(scale);
  ASSIGN_OR_RETURN(r.norm_topk_prob, f.Bool("norm_topk_prob", v3));
  if (!v3 && r.norm_topk_prob && top_k > 1) {
    // DeepSeek-V2's reference code renormalises *instead of* scaling.
    r.routed_scaling_factor = 1.0f;
  }
  return r;
}

absl::Status Validate(const ModelConfig& c, const std::string& source) {
  auto positive = [&](const char* name, int64_t v) -> absl::Status {
    if (v <= 0) return absl::InvalidArgumentError(absl::StrCat(source, ": \"", name, "\" must be positive, got ", v));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(positive("vocab_size", c.vocab_size));
  RETURN_IF_ERROR(positive("hidden_size", c.hidden_size));
  RETURN_IF_ERROR(positive("num_hidden_layers", c.num_hidden_layers));
  RETURN_IF_ERROR(positive("num_attention_heads", c.num_attention_heads));
  RETURN_IF_ERROR(positive("max_position_embeddings", c.max_position_embeddings));
  if (c.hidden_act != "silu") {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": hidden_act \"", c.hidden_act, "\" is not supported (silu)"));
  }
  if (c.uses_mla()) {
    RETURN_IF_ERROR(positive("kv_lora_rank", c.kv_lora_rank));
    RETURN_IF_ERROR(positive("qk_rope_head_dim", c.qk_rope_head_dim));
    RETURN_IF_ERROR(positive("qk_nope_head_dim", c.qk_nope_head_dim));
    RETURN_IF_ERROR(positive("v_head_dim", c.v_head_dim));
    if (c.qk_rope_head_dim % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": qk_rope_head_dim must be even"));
    }
  } else {
    RETURN_IF_ERROR(positive("num_key_value_heads", c.num_key_value_heads));
    RETURN_IF_ERROR(positive("head_dim", c.head_dim));
    if (c.num_attention_heads % c.num_key_value_heads != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": num_attention_heads (", c.num_attention_heads,
          ") must be a multiple of num_key_value_heads (", c.num_key_value_heads, ")"));
    }
    if (c.head_dim % 2 != 0) return absl::InvalidArgumentError(absl::StrCat(source, ": head_dim must be even"));
  }
  if (c.num_experts > 0) {
    RETURN_IF_ERROR(positive("num_experts_per_tok", c.num_experts_per_tok));
    if (c.num_experts_per_tok > c.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": num_experts_per_tok (", c.num_experts_per_tok,
                                                     ") exceeds the number of experts (", c.num_experts, ")"));
    }
    const MoeRoutingParams& r = c.routing;
    if (r.method != MoeTopkMethod::kGreedy) {
      if (r.n_group <= 0 || c.num_experts % r.n_group != 0) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": n_group (", r.n_group,
                                                       ") must divide the number of experts (", c.num_experts, ")"));
      }
      if (r.topk_group <= 0 || r.topk_group > r.n_group) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": topk_group (", r.topk_group,
                                                       ") must be in [1, n_group=", r.n_group, "]"));
      }
      if (r.method == MoeTopkMethod::kNoAuxTc && c.num_experts / r.n_group < 2) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": noaux_tc routing needs at least 2 experts per group"));
      }
    }
  } else {
    RETURN_IF_ERROR(positive("intermediate_size", c.intermediate_size));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view ArchitectureName(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama: return "LlamaForCausalLM";
    case Architecture::kQwen2: return "Qwen2ForCausalLM";
    case Architecture::kMixtral: return "MixtralForCausalLM";
    case Architecture::kDeepseekV2: return "DeepseekV2ForCausalLM";
    case Architecture::kDeepseekV3: return "DeepseekV3ForCausalLM";
  }
  return "?";
}

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  if (num_experts == 0) return false;
  if (!is_deepseek()) return true;
  return layer >= first_k_dense_replace && layer % std::max<int64_t>(1, moe_layer_freq) == 0;
}

double ModelConfig::AttentionScale() const {
  if (!uses_mla()) return 1.0 / std::sqrt(static_cast<double>(head_dim));
  double scale = 1.0 / std::sqrt(static_cast<double>(qk_nope_head_dim + qk_rope_head_dim));
  if (rope.type != RopeConfig::Type::kDefault && rope.mscale_all_dim != 0.0 && rope.factor > 1.0) {
    const double m = 0.1 * rope.mscale_all_dim * std::log(rope.factor) + 1.0;
    scale *= m * m;
  }
  return scale;
}

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source_name) {
  const std::string source(source_name);
  Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  ModelConfig c;
  ASSIGN_OR_RETURN(c.architecture, ParseArchitecture(j, source));
  const Fields f(j, source);
  const Architecture a = c.architecture;
  const bool deepseek = a == Architecture::kDeepseekV2 || a == Architecture::kDeepseekV3;

  ASSIGN_OR_RETURN(c.model_type, f.String("model_type", ""));
  ASSIGN_OR_RETURN(c.vocab_size, f.Int("vocab_size", std::nullopt));
  ASSIGN_OR_RETURN(c.hidden_size, f.Int("hidden_size", std::nullopt));
  ASSIGN_OR_RETURN(c.intermediate_size, f.Int("intermediate_size", 0));
  ASSIGN_OR_RETURN(c.num_hidden_layers, f.Int("num_hidden_layers", std::nullopt));
  ASSIGN_OR_RETURN(c.num_attention_heads, f.Int("num_attention_heads", std::nullopt));
  ASSIGN_OR_RETURN(c.num_key_value_heads, f.Int("num_key_value_heads", c.num_attention_heads));
  const int64_t default_head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  ASSIGN_OR_RETURN(c.head_dim, f.Int("head_dim", default_head_dim));
  ASSIGN_OR_RETURN(c.max_position_embeddings, f.Int("max_position_embeddings", 2048));
  ASSIGN_OR_RETURN(c.rms_norm_eps, f.Double("rms_norm_eps", 1e-6));
  ASSIGN_OR_RETURN(c.tie_word_embeddings, f.Bool("tie_word_embeddings", false));
  ASSIGN_OR_RETURN(c.attention_bias, f.Bool("attention_bias", false));
  if (a == Architecture::kQwen2) c.attention_bias = true;  // Qwen2's q/k/v always carry biases
  ASSIGN_OR_RETURN(c.hidden_act, f.String("hidden_act", "silu"));
  ASSIGN_OR_RETURN(c.torch_dtype, f.String("torch_dtype", ""));
  if (c.torch_dtype.empty()) {
    ASSIGN_OR_RETURN(c.torch_dtype, f.String("dtype", ""));
  }
  RETURN_IF_ERROR(ParseRope(j, source, &c.rope));

  if (auto it = j.find("bos_token_id"); it != j.end() && it->is_number_integer()) {
    c.bos_token_id = it->get<int32_t>();
  }
  if (auto it = j.find("eos_token_id"); it != j.end()) {
    if (it->is_number_integer()) {
      c.eos_token_ids.push_back(it->get<int32_t>());
    } else if (it->is_array()) {
      for (const auto& e : *it) {
        if (!e.is_number_integer()) return f.Wrong("eos_token_id", "an integer or a list of integers");
        c.eos_token_ids.push_back(e.get<int32_t>());
      }
    }
  }

  if (a == Architecture::kMixtral) {
    ASSIGN_OR_RETURN(c.num_experts, f.Int("num_local_experts", std::nullopt));
    ASSIGN_OR_RETURN(c.num_experts_per_tok, f.Int("num_experts_per_tok", 2));
    c.moe_intermediate_size = c.intermediate_size;
  } else if (deepseek) {
    ASSIGN_OR_RETURN(c.num_experts, f.Int("n_routed_experts", 0));
    ASSIGN_OR_RETURN(c.num_experts_per_tok, f.Int("num_experts_per_tok", 0));
    ASSIGN_OR_RETURN(c.moe_intermediate_size, f.Int("moe_intermediate_size", 0));
    ASSIGN_OR_RETURN(c.n_shared_experts, f.Int("n_shared_experts", 0));
    ASSIGN_OR_RETURN(c.first_k_dense_replace, f.Int("first_k_dense_replace", 0));
    ASSIGN_OR_RETURN(c.moe_layer_freq, f.Int("moe_layer_freq", 1));
    ASSIGN_OR_RETURN(c.q_lora_rank, f.Int("q_lora_rank", 0));
    ASSIGN_OR_RETURN(c.kv_lora_rank, f.Int("kv_lora_rank", std::nullopt));
    ASSIGN_OR_RETURN(c.qk_nope_head_dim, f.Int("qk_nope_head_dim", std::nullopt));
    ASSIGN_OR_RETURN(c.qk_rope_head_dim, f.Int("qk_rope_head_dim", std::nullopt));
    ASSIGN_OR_RETURN(c.v_head_dim, f.Int("v_head_dim", std::nullopt));
    ASSIGN_OR_RETURN(c.num_nextn_predict_layers, f.Int("num_nextn_predict_layers", 0));
    c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
    c.num_key_value_heads = c.num_attention_heads;
    if (c.moe_intermediate_size <= 0 && c.num_experts > 0) return f.Missing("moe_intermediate_size");
    if (c.first_k_dense_replace > 0 || c.num_experts == 0) {
      if (c.intermediate_size <= 0) return f.Missing("intermediate_size");
    }
  }
  if (c.num_experts > 0) {
    ASSIGN_OR_RETURN(c.routing, ParseRouting(f, a, c.num_experts_per_tok));
  }

  if (auto it = j.find("quantization_config"); it != j.end() && it->is_object()) {
    const Fields q(*it, absl::StrCat(source, " quantization_config"));
    ASSIGN_OR_RETURN(std::string method, q.String("quant_method", ""));
    if (method != "fp8") {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": quantization_config.quant_method \"", method, "\" is not supported (fp8)"));
    }
    c.fp8_block_rows = c.fp8_block_cols = 128;
    if (auto b = it->find("weight_block_size"); b != it->end()) {
      if (!b->is_array() || b->size() != 2 || !(*b)[0].is_number_integer() ||
          !(*b)[1].is_number_integer() || (*b)[0].get<int64_t>() <= 0 || (*b)[1].get<int64_t>() <= 0) {
        return q.Wrong("weight_block_size", "two positive integers");
      }
      c.fp8_block_rows = (*b)[0].get<int64_t>();
      c.fp8_block_cols = (*b)[1].get<int64_t>();
    }
  }
  if (c.rope.type == RopeConfig::Type::kYarn && c.rope.factor <= 0.0) {
    c.rope.factor = static_cast<double>(c.max_position_embeddings) /
                    static_cast<double>(std::max<int64_t>(1, c.rope.original_max_position_embeddings));
  }
  RETURN_IF_ERROR(Validate(c, source));
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path);
}

}  // namespace moeserve

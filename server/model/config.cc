#include "server/model/config.h"

#include <cmath>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "server/common/mapped_file.h"
#include "server/common/status_macros.h"
#include "server/model/architecture.h"
#include "server/model/config_fields.h"
#include "server/model/config_limits.h"

namespace moeserve {
namespace {

using Json = nlohmann::json;

absl::StatusOr<const Architecture*> FindArchitecture(const Json& j, const std::string& source,
                                                     const ArchitectureRegistry& architectures) {
  auto it = j.find("architectures");
  if (it == j.end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": \"architectures\" must be a non-empty list of strings"));
  }
  const std::string name = (*it)[0].get<std::string>();
  if (const Architecture* arch = architectures.Find(name)) return arch;
  return absl::InvalidArgumentError(absl::StrCat(source, ": unsupported architecture \"", name,
                                                 "\" (supported: ", absl::StrJoin(architectures.Names(), ", "), ")"));
}

absl::Status ParseRope(const Json& j, const std::string& source, RopeConfig* rope) {
  const ConfigFields f(j, source);
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
  const ConfigFields p(*params, where);
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
    ASSIGN_OR_RETURN(rope->original_max_position_embeddings, p.Int("original_max_position_embeddings", std::nullopt));
    if (rope->high_freq_factor <= rope->low_freq_factor) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": high_freq_factor must exceed low_freq_factor"));
    }
  } else if (type == "yarn") {
    rope->type = RopeConfig::Type::kYarn;
    ASSIGN_OR_RETURN(rope->original_max_position_embeddings, p.Int("original_max_position_embeddings", std::nullopt));
    ASSIGN_OR_RETURN(rope->factor, p.Double("factor", 0.0));
    ASSIGN_OR_RETURN(rope->beta_fast, p.Double("beta_fast", 32.0));
    ASSIGN_OR_RETURN(rope->beta_slow, p.Double("beta_slow", 1.0));
    ASSIGN_OR_RETURN(rope->mscale, p.Double("mscale", 0.0));
    ASSIGN_OR_RETURN(rope->mscale_all_dim, p.Double("mscale_all_dim", 0.0));
    ASSIGN_OR_RETURN(rope->truncate, p.Bool("truncate", true));
    if (p.Has("attention_factor")) {
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

absl::Status ParseQuantization(const Json& j, const std::string& source, ModelConfig& c) {
  auto it = j.find("quantization_config");
  if (it == j.end() || !it->is_object()) return absl::OkStatus();
  const ConfigFields q(*it, absl::StrCat(source, " quantization_config"));
  ASSIGN_OR_RETURN(std::string method, q.String("quant_method", ""));
  if (method != "fp8") {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": quantization_config.quant_method \"", method, "\" is not supported (fp8)"));
  }
  c.fp8_block_rows = c.fp8_block_cols = 128;
  if (auto b = it->find("weight_block_size"); b != it->end()) {
    if (!b->is_array() || b->size() != 2 || !(*b)[0].is_number_integer() || !(*b)[1].is_number_integer() ||
        (*b)[0].get<int64_t>() <= 0 || (*b)[1].get<int64_t>() <= 0) {
      return q.Wrong("weight_block_size", "two positive integers");
    }
    c.fp8_block_rows = (*b)[0].get<int64_t>();
    c.fp8_block_cols = (*b)[1].get<int64_t>();
  }
  return absl::OkStatus();
}

// `value` of `field` at most `limit` (ModelConfigLimits).
absl::Status AtMost(const ConfigFields& f, const char* field, int64_t value, int64_t limit) {
  if (value <= limit) return absl::OkStatus();
  return f.Invalid(absl::StrCat("\"", field, "\" is ", value, ", more than moeserve supports (", limit, ")"));
}

// The fields every architecture shares.
absl::Status ParseCommon(const Json& j, const ConfigFields& f, ModelConfig& c) {
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
  ASSIGN_OR_RETURN(c.hidden_act, f.String("hidden_act", "silu"));
  ASSIGN_OR_RETURN(c.torch_dtype, f.String("torch_dtype", ""));
  if (c.torch_dtype.empty()) {
    ASSIGN_OR_RETURN(c.torch_dtype, f.String("dtype", ""));
  }
  RETURN_IF_ERROR(ParseRope(j, f.source(), &c.rope));
  if (c.rope.type == RopeConfig::Type::kYarn && c.rope.factor <= 0.0) {
    c.rope.factor = static_cast<double>(c.max_position_embeddings) /
                    static_cast<double>(std::max<int64_t>(1, c.rope.original_max_position_embeddings));
  }

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
  RETURN_IF_ERROR(ParseQuantization(j, f.source(), c));

  auto positive = [&](const char* name, int64_t v) -> absl::Status {
    if (v <= 0) return f.Invalid(absl::StrCat("\"", name, "\" must be positive, got ", v));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(positive("vocab_size", c.vocab_size));
  RETURN_IF_ERROR(positive("hidden_size", c.hidden_size));
  RETURN_IF_ERROR(positive("num_hidden_layers", c.num_hidden_layers));
  RETURN_IF_ERROR(positive("num_attention_heads", c.num_attention_heads));
  RETURN_IF_ERROR(positive("max_position_embeddings", c.max_position_embeddings));
  using L = ModelConfigLimits;
  RETURN_IF_ERROR(AtMost(f, "vocab_size", c.vocab_size, L::kMaxVocabSize));
  RETURN_IF_ERROR(AtMost(f, "hidden_size", c.hidden_size, L::kMaxHiddenSize));
  RETURN_IF_ERROR(AtMost(f, "intermediate_size", c.intermediate_size, L::kMaxIntermediateSize));
  RETURN_IF_ERROR(AtMost(f, "num_hidden_layers", c.num_hidden_layers, L::kMaxLayers));
  RETURN_IF_ERROR(AtMost(f, "num_attention_heads", c.num_attention_heads, L::kMaxHeads));
  RETURN_IF_ERROR(AtMost(f, "num_key_value_heads", c.num_key_value_heads, L::kMaxHeads));
  RETURN_IF_ERROR(AtMost(f, "head_dim", c.head_dim, L::kMaxHeadDim));
  RETURN_IF_ERROR(AtMost(f, "max_position_embeddings", c.max_position_embeddings, L::kMaxPositionEmbeddings));
  if (c.hidden_act != "silu") {
    return f.Invalid(absl::StrCat("hidden_act \"", c.hidden_act, "\" is not supported (silu)"));
  }
  c.moe_layers.assign(static_cast<size_t>(c.num_hidden_layers), false);
  return absl::OkStatus();
}

// What every architecture's result must satisfy.
absl::Status Validate(const ModelConfig& c, const ConfigFields& f) {
  // The architectures' own fields, read after ParseCommon's (names as the families spell them).
  using L = ModelConfigLimits;
  for (const auto& [field, value, limit] :
       {std::tuple{"the number of experts", c.num_experts, L::kMaxExperts},
        std::tuple{"moe_intermediate_size", c.moe_intermediate_size, L::kMaxIntermediateSize},
        std::tuple{"n_shared_experts", c.n_shared_experts, L::kMaxExperts},
        std::tuple{"q_lora_rank", c.q_lora_rank, L::kMaxLoraRank},
        std::tuple{"kv_lora_rank", c.kv_lora_rank, L::kMaxLoraRank},
        std::tuple{"qk_nope_head_dim", c.qk_nope_head_dim, L::kMaxHeadDim},
        std::tuple{"qk_rope_head_dim", c.qk_rope_head_dim, L::kMaxHeadDim},
        std::tuple{"v_head_dim", c.v_head_dim, L::kMaxHeadDim}, std::tuple{"head_dim", c.head_dim, L::kMaxHeadDim},
        std::tuple{"num_nextn_predict_layers", c.num_nextn_predict_layers, L::kMaxLayers}}) {
    if (value < 0) return f.Invalid(absl::StrCat(field, " must not be negative, got ", value));
    RETURN_IF_ERROR(AtMost(f, field, value, limit));
  }
  if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0) {
    return f.Invalid(absl::StrCat("num_attention_heads (", c.num_attention_heads,
                                  ") must be a multiple of num_key_value_heads (", c.num_key_value_heads, ")"));
  }
  if (c.head_dim <= 0) return f.Invalid(absl::StrCat("\"head_dim\" must be positive, got ", c.head_dim));
  if (c.rotary_dim <= 0 || c.rotary_dim % 2 != 0 || c.rotary_dim > c.head_dim) {
    return f.Invalid(
        absl::StrCat("the rotary dimension (", c.rotary_dim, ") must be even and at most head_dim (", c.head_dim, ")"));
  }
  if (static_cast<int64_t>(c.moe_layers.size()) != c.num_hidden_layers) {
    return absl::InternalError(absl::StrCat(f.source(), ": the architecture's MoE layer pattern has ",
                                            c.moe_layers.size(), " layers, not ", c.num_hidden_layers));
  }
  bool any_dense = false, any_moe = false;
  for (bool moe : c.moe_layers) (moe ? any_moe : any_dense) = true;
  if (any_dense && c.intermediate_size <= 0) {
    return f.Invalid(absl::StrCat("\"intermediate_size\" must be positive, got ", c.intermediate_size));
  }
  if (!any_moe) return absl::OkStatus();
  if (c.num_experts <= 0) return f.Invalid("MoE layers need a positive number of experts");
  if (c.moe_intermediate_size <= 0) {
    return f.Invalid(absl::StrCat("the experts' intermediate size must be positive, got ", c.moe_intermediate_size));
  }
  if (c.num_experts_per_tok <= 0) {
    return f.Invalid(absl::StrCat("\"num_experts_per_tok\" must be positive, got ", c.num_experts_per_tok));
  }
  if (c.num_experts_per_tok > c.num_experts) {
    return f.Invalid(absl::StrCat("num_experts_per_tok (", c.num_experts_per_tok, ") exceeds the number of experts (",
                                  c.num_experts, ")"));
  }
  const MoeRoutingParams& r = c.routing;
  if (r.top_k != c.num_experts_per_tok) {
    return absl::InternalError(
        absl::StrCat(f.source(), ": routing top_k ", r.top_k, " != num_experts_per_tok ", c.num_experts_per_tok));
  }
  if (r.method != MoeTopkMethod::kGreedy) {
    if (r.n_group <= 0 || c.num_experts % r.n_group != 0) {
      return f.Invalid(
          absl::StrCat("n_group (", r.n_group, ") must divide the number of experts (", c.num_experts, ")"));
    }
    if (r.topk_group <= 0 || r.topk_group > r.n_group) {
      return f.Invalid(absl::StrCat("topk_group (", r.topk_group, ") must be in [1, n_group=", r.n_group, "]"));
    }
    if (r.method == MoeTopkMethod::kNoAuxTc && c.num_experts / r.n_group < 2) {
      return f.Invalid("noaux_tc routing needs at least 2 experts per group");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source_name) {
  return ParseModelConfig(json_text, source_name, BuiltinArchitectures());
}

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source_name,
                                             const ArchitectureRegistry& architectures) {
  const std::string source(source_name);
  Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  ASSIGN_OR_RETURN(const Architecture* arch, FindArchitecture(j, source, architectures));
  const ConfigFields f(j, source);
  ModelConfig c;
  c.architecture = std::string(arch->name());
  RETURN_IF_ERROR(ParseCommon(j, f, c));
  RETURN_IF_ERROR(arch->ParseConfig(f, c));
  if (c.rotary_dim == 0) c.rotary_dim = c.head_dim;
  if (c.attention_scale == 0.0 && c.head_dim > 0) c.attention_scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  RETURN_IF_ERROR(Validate(c, f));
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  return LoadModelConfig(model_dir, BuiltinArchitectures());
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir, const ArchitectureRegistry& architectures) {
  const std::string path = model_dir + "/config.json";
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path, architectures);
}

}  // namespace moeserve

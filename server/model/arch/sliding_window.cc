#include "server/model/arch/sliding_window.h"

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

absl::Status RejectSlidingLayerTypes(const ConfigFields& f) {
  if (!f.Has("layer_types")) return absl::OkStatus();
  const nlohmann::json& types = f.json()["layer_types"];
  if (!types.is_array()) return f.Wrong("layer_types", "a list of strings");
  for (const nlohmann::json& t : types) {
    if (!t.is_string()) return f.Wrong("layer_types", "a list of strings");
    if (t.get<std::string>() != "full_attention") {
      return f.Invalid(absl::StrCat("layer type \"", t.get<std::string>(),
                                    "\" is not supported (sliding-window attention is not implemented)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RejectQwenSlidingWindow(const ConfigFields& f, const ModelConfig& c) {
  RETURN_IF_ERROR(RejectSlidingLayerTypes(f));
  ASSIGN_OR_RETURN(bool sliding, f.Bool("use_sliding_window", false));
  if (!sliding) return absl::OkStatus();
  ASSIGN_OR_RETURN(int64_t full_layers, f.Int("max_window_layers", 28));
  if (full_layers < c.num_hidden_layers) {
    return f.Invalid(absl::StrCat("use_sliding_window with max_window_layers ", full_layers, " < num_hidden_layers ",
                                  c.num_hidden_layers, " is not supported (sliding-window attention)"));
  }
  return absl::OkStatus();
}

absl::Status RejectMistralSlidingWindow(const ConfigFields& f, const ModelConfig& c) {
  RETURN_IF_ERROR(RejectSlidingLayerTypes(f));
  if (!f.Has("sliding_window")) return absl::OkStatus();
  ASSIGN_OR_RETURN(int64_t window, f.Int("sliding_window", std::nullopt));
  if (window < c.max_position_embeddings) {
    return f.Invalid(absl::StrCat("sliding_window ", window, " < max_position_embeddings ", c.max_position_embeddings,
                                  " is not supported (sliding-window attention)"));
  }
  return absl::OkStatus();
}

}  // namespace moeserve

#ifndef MOESERVE_SERVER_MODEL_ARCH_SLIDING_WINDOW_H_
#define MOESERVE_SERVER_MODEL_ARCH_SLIDING_WINDOW_H_

#include "absl/status/status.h"
#include "server/model/config.h"
#include "server/model/config_fields.h"

namespace moeserve {

// Sliding-window attention is not implemented: these reject the configs that ask for it (instead of
// silently attending to the whole context). Any "layer_types" entry other than "full_attention"
// (transformers 5) is rejected by both.

// Qwen2/Qwen3: use_sliding_window true with max_window_layers below num_hidden_layers.
absl::Status RejectQwenSlidingWindow(const ConfigFields& fields, const ModelConfig& config);
// Mistral/Mixtral: a sliding_window shorter than max_position_embeddings.
absl::Status RejectMistralSlidingWindow(const ConfigFields& fields, const ModelConfig& config);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_ARCH_SLIDING_WINDOW_H_

#ifndef MOESERVE_SERVER_MODEL_WEIGHT_NAMES_H_
#define MOESERVE_SERVER_MODEL_WEIGHT_NAMES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/model/config.h"

namespace moeserve {

// One tensor of a Hugging Face checkpoint, as published on the hub (per-expert names for MoE).
struct WeightSpec {
  enum class Kind : uint8_t { kEmbedding, kLinear, kBias, kNorm, kRouter, kCorrectionBias };
  std::string name;
  std::vector<int64_t> shape;
  Kind kind;
};

// Every tensor a checkpoint of `config` holds, in a stable order (multi-token-prediction layers
// excluded). Used by make-model and to report what a checkpoint is missing.
std::vector<WeightSpec> CheckpointWeights(const ModelConfig& config);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_WEIGHT_NAMES_H_

#ifndef MOESERVE_SERVER_MODEL_CONFIG_LIMITS_H_
#define MOESERVE_SERVER_MODEL_CONFIG_LIMITS_H_

#include <cstdint>

namespace moeserve {

// The largest sizes ParseModelConfig accepts: far beyond any published model (DeepSeek-V3: 61
// layers, 256 experts, a 129,280-token vocabulary), low enough that no table sized from them
// (layers, rotary cos/sin rows, per-expert lists) can exhaust memory before the weights are read.
// A config.json beyond one is refused with an error naming the field and the limit.
struct ModelConfigLimits {
  static constexpr int64_t kMaxLayers = 1024;
  static constexpr int64_t kMaxVocabSize = int64_t{1} << 24;
  static constexpr int64_t kMaxHiddenSize = int64_t{1} << 17;
  static constexpr int64_t kMaxIntermediateSize = int64_t{1} << 20;
  static constexpr int64_t kMaxHeads = 4096;
  static constexpr int64_t kMaxHeadDim = 4096;
  static constexpr int64_t kMaxPositionEmbeddings = int64_t{1} << 24;
  static constexpr int64_t kMaxExperts = int64_t{1} << 16;
  static constexpr int64_t kMaxLoraRank = int64_t{1} << 16;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_CONFIG_LIMITS_H_

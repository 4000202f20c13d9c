#ifndef MOESERVE_SERVER_MODEL_WEIGHT_SPEC_H_
#define MOESERVE_SERVER_MODEL_WEIGHT_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

namespace moeserve {

// One tensor of a Hugging Face checkpoint: its name as published, its shape and its role (the role
// picks make-model's random initialisation and which tensors an fp8 checkpoint quantises). Loading
// accepts the first of `name`, `aliases...` present in the checkpoint; make-model writes `name`.
struct WeightSpec {
  enum class Kind : uint8_t {
    kEmbedding,  // token embedding or LM head
    kLinear,     // a projection inside the decoder (fp8 block-quantised in an fp8 checkpoint)
    kBias,
    kNorm,            // RMSNorm weight
    kRouter,          // MoE router
    kCorrectionBias,  // DeepSeek-V3's e_score_correction_bias
  };
  std::string name;
  std::vector<int64_t> shape;
  Kind kind = Kind::kLinear;
  std::vector<std::string> aliases;  // other names the same tensor goes by in some checkpoints
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_WEIGHT_SPEC_H_

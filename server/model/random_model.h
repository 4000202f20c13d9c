#ifndef MOESERVE_SERVER_MODEL_RANDOM_MODEL_H_
#define MOESERVE_SERVER_MODEL_RANDOM_MODEL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "server/backend/tensor.h"

namespace moeserve {

class ArchitectureRegistry;

struct RandomModelOptions {
  uint64_t seed = 0;
  DType dtype = DType::kBF16;  // F32, BF16 or F16; FP8 configs store linear weights as F8_E4M3
  float init_std = 0.02f;
  int64_t max_shard_bytes = int64_t{2} << 30;
  const ArchitectureRegistry* architectures = nullptr;  // nullptr = the built-in ones
};

// Writes a Hugging Face model directory for `config_json` (any registered architecture) with random
// weights: config.json as given, safetensors shards (+ index when more than one) holding the
// architecture's tensors (Architecture::Tensors). Values depend
// only on the seed and the tensor name. Linear weights are uniform with standard deviation
// init_std, norms 1, routers and correction biases small. With an fp8 quantization_config the
// decoder's linear weights (WeightSpec::Kind::kLinear) are stored as F8_E4M3 with block scales,
// like DeepSeek-V3.
// Memory use stays near one shard.
absl::Status WriteRandomModel(std::string_view config_json, const std::string& out_dir,
                              const RandomModelOptions& options);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_RANDOM_MODEL_H_

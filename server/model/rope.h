#ifndef MOESERVE_SERVER_MODEL_ROPE_H_
#define MOESERVE_SERVER_MODEL_ROPE_H_

#include <cstdint>
#include <vector>

#include "server/model/config.h"

namespace moeserve {

// The rotary frequencies of a model: rotary_dim / 2 inverse frequencies and the factor YaRN folds
// into cos and sin ("attention_factor"; 1 for other types). Matches transformers' rope init
// functions (default, linear, llama3, yarn), computed in fp32 like them.
struct RopeFrequencies {
  std::vector<float> inv_freq;
  double attention_factor = 1.0;
};
RopeFrequencies ComputeRopeFrequencies(const RopeConfig& rope, int64_t rotary_dim);

// The table the Rope op reads: row p = [cos(p·f_0..f_{n-1}) · a, sin(p·f_0..f_{n-1}) · a],
// n = rotary_dim / 2, a = attention_factor. Size max_position × rotary_dim.
std::vector<float> BuildRopeCosSinTable(const RopeFrequencies& freqs, int64_t max_position);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_ROPE_H_

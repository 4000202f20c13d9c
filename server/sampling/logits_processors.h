#ifndef MOESERVE_SERVER_SAMPLING_LOGITS_PROCESSORS_H_
#define MOESERVE_SERVER_SAMPLING_LOGITS_PROCESSORS_H_

// The sparse logits processors the Sampler applies before temperature, each editing one row of fp32
// logits in place with plain fp32 arithmetic (a GPU version must do the same operations):
//   ApplyLogitBias      logits[id] += bias
//   SuppressTokens      logits[id] = -inf
//   Penalties::Apply    repetition (prompt + output tokens, each distinct id once):
//                         logits[id] = logits[id] > 0 ? logits[id] / r : logits[id] * r
//                       then frequency and presence (output tokens, count c >= 1):
//                         logits[id] = (logits[id] - frequency * c) - presence

#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace moeserve {

// Ids outside the row are ignored (Validate() rejects them earlier).
void ApplyLogitBias(const std::map<int32_t, float>& bias, absl::Span<float> logits);
void SuppressTokens(absl::Span<const int32_t> ids, absl::Span<float> logits);
// Structured output, fused into the Sampler's copy of the raw logits (one pass over the row, not
// a copy and then a masking pass): dst[id] = src[id] where bit (id % 32) of mask[id / 32] is set,
// -inf where it is clear. `mask` has (src.size() + 31) / 32 words. REQUIRES: dst.size() ==
// src.size(). Bit-exact (NaN payloads included) on every ISA: lanes are selected, never computed.
void CopyAllowedLogits(absl::Span<const float> src, const uint32_t* mask, absl::Span<float> dst);

// Holds per-vocabulary scratch so that a row costs O(prompt + output), not O(vocab), and allocates
// nothing. Requires external synchronization.
class Penalties {
 public:
  explicit Penalties(int32_t vocab_size);

  Penalties(const Penalties&) = delete;
  Penalties& operator=(const Penalties&) = delete;

  // InvalidArgument when a token id is outside the vocabulary (logits then unchanged).
  absl::Status Apply(float repetition, float presence, float frequency, absl::Span<const int32_t> prompt,
                     absl::Span<const int32_t> output, absl::Span<float> logits);

 private:
  int32_t vocab_size_;
  std::vector<uint8_t> seen_;   // all zero between calls
  std::vector<int32_t> count_;  // all zero between calls
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SAMPLING_LOGITS_PROCESSORS_H_

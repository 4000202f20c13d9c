#include "server/sampling/logits_processors.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace moeserve {

void ApplyLogitBias(const std::map<int32_t, float>& bias, absl::Span<float> logits) {
  const int64_t n = static_cast<int64_t>(logits.size());
  for (const auto& [id, b] : bias) {
    if (id >= 0 && id < n) logits[id] += b;
  }
}

void SuppressTokens(absl::Span<const int32_t> ids, absl::Span<float> logits) {
  const int64_t n = static_cast<int64_t>(logits.size());
  for (int32_t id : ids) {
    if (id >= 0 && id < n) logits[id] = -std::numeric_limits<float>::infinity();
  }
}

void ApplyTokenMask(const uint32_t* mask, absl::Span<float> logits) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const size_t n = logits.size();
  float* x = logits.data();
  // Structured-output masks are mostly whole words of 0 (a constrained row allows few tokens) or
  // of ~0: those take one vectorized fill or nothing; mixed words a branch-free select.
  for (size_t w = 0; w * 32 < n; ++w) {
    const uint32_t bits = mask[w];
    if (bits == ~0u) continue;
    const size_t begin = w * 32, end = std::min(n, begin + 32);
    if (bits == 0) {
      std::fill(x + begin, x + end, kNegInf);
      continue;
    }
    for (size_t i = begin; i < end; ++i) x[i] = ((bits >> (i - begin)) & 1u) != 0 ? x[i] : kNegInf;
  }
}

Penalties::Penalties(int32_t vocab_size) : vocab_size_(vocab_size), seen_(vocab_size, 0), count_(vocab_size, 0) {
  MS_CHECK(vocab_size > 0);
}

absl::Status Penalties::Apply(float repetition, float presence, float frequency, absl::Span<const int32_t> prompt,
                              absl::Span<const int32_t> output, absl::Span<float> logits) {
  MS_CHECK(static_cast<int32_t>(logits.size()) == vocab_size_);
  const bool use_repetition = repetition != 1.0f;
  const bool use_additive = presence != 0.0f || frequency != 0.0f;
  if (!use_repetition && !use_additive) return absl::OkStatus();
  for (absl::Span<const int32_t> tokens : {prompt, output}) {
    for (int32_t id : tokens) {
      if (id < 0 || id >= vocab_size_) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", id, " in the sequence is outside the vocabulary [0, ", vocab_size_, ")"));
      }
    }
  }
  if (use_repetition) {
    for (absl::Span<const int32_t> tokens : {prompt, output}) {
      for (int32_t id : tokens) {
        if (seen_[id]) continue;
        seen_[id] = 1;
        const float v = logits[id];
        logits[id] = v > 0.0f ? v / repetition : v * repetition;
      }
    }
    for (absl::Span<const int32_t> tokens : {prompt, output}) {
      for (int32_t id : tokens) seen_[id] = 0;
    }
  }
  if (use_additive) {
    for (int32_t id : output) ++count_[id];
    for (int32_t id : output) {
      const int32_t c = count_[id];
      if (c == 0) continue;  // already applied
      logits[id] = (logits[id] - frequency * static_cast<float>(c)) - presence;
      count_[id] = 0;
    }
  }
  return absl::OkStatus();
}

}  // namespace moeserve

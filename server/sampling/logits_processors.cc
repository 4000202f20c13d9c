#include "server/sampling/logits_processors.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace moeserve {
#if defined(__SSE2__)
namespace {

// kNibbleLanes.lanes[g][l]: all ones when bit l of g is set, else zero.
struct NibbleLanes {
  alignas(16) uint32_t lanes[16][4];
};

constexpr NibbleLanes MakeNibbleLanes() {
  NibbleLanes t{};
  for (uint32_t g = 0; g < 16; ++g) {
    for (uint32_t l = 0; l < 4; ++l) t.lanes[g][l] = ((g >> l) & 1u) != 0 ? ~0u : 0u;
  }
  return t;
}

constexpr NibbleLanes kNibbleLanes = MakeNibbleLanes();

}  // namespace
#endif

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

void CopyAllowedLogits(absl::Span<const float> src, const uint32_t* mask, absl::Span<float> dst) {
  MS_CHECK(dst.size() == src.size());
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const size_t n = src.size();
  const float* in = src.data();
  float* out = dst.data();
  size_t i = 0;
#if defined(__SSE2__)
  // Four logits per 4-bit group of the mask: a 16-entry table turns the group into lane masks, and
  // and/andnot/or select the logit or -inf. Branch-free, so mixed words (a regex over a few
  // characters allows thousands of scattered tokens) cost what all-0 and all-1 words cost.
  const __m128 neg_inf = _mm_set1_ps(kNegInf);
  for (; i + 32 <= n; i += 32) {
    const uint32_t bits = mask[i / 32];
    for (int k = 0; k < 8; ++k) {
      const __m128 lanes = _mm_castsi128_ps(
          _mm_load_si128(reinterpret_cast<const __m128i*>(kNibbleLanes.lanes[(bits >> (4 * k)) & 15u])));
      const __m128 x = _mm_loadu_ps(in + i + 4 * k);
      _mm_storeu_ps(out + i + 4 * k, _mm_or_ps(_mm_and_ps(lanes, x), _mm_andnot_ps(lanes, neg_inf)));
    }
  }
#endif
  for (; i < n; ++i) out[i] = ((mask[i / 32] >> (i % 32)) & 1u) != 0 ? in[i] : kNegInf;
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

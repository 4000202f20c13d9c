#ifndef MOESERVE_SERVER_SAMPLING_TOKEN_FILTER_H_
#define MOESERVE_SERVER_SAMPLING_TOKEN_FILTER_H_

// TokenFilter: top-k, top-p and min-p over one row of temperature-scaled logits x, and the draw.
//
// Token order: token a precedes b when x[a] > x[b], or x[a] == x[b] and a < b. Top-k and top-p
// keep a prefix of that order; min-p keeps a threshold set. With w[i] = ExpShifted(x, max x):
//   top-k: the first k tokens (off when k <= 0 or k >= vocab).
//   top-p: over the top-k survivors with mass Z = sum w (double), the shortest prefix whose
//          cumulative mass reaches top_p * Z (at least one token; off when top_p >= 1).
//   min-p: tokens with w[i] >= min_p (w of the top token is exactly 1; off when min_p <= 0).
// The kept set is the intersection. Cumulative masses are double sums; a different summation order
// can change the result only where a cumulative mass is within rounding of top_p * Z.
//
// Cost O(vocab) and allocation-free: one pass gathers the tokens above a threshold that must hold
// the kept prefix (top-k: estimated from a strided sample of 1024 logits; top-p: windows of 4, 8,
// ... 64 nats below the top token; each checked and widened when short), and only those
// candidates are selected (nth_element for top-k, a weighted quickselect for top-p). exp() runs
// over the whole row only for top-p without top-k.
//
// Owns scratch sized for the vocabulary: requires external synchronization.

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace moeserve {

class TokenFilter {
 public:
  explicit TokenFilter(int32_t vocab_size);

  struct Candidate {  // contiguous copies, so that selection does not chase ids
    float x;
    float w;
    int32_t id;
  };

  TokenFilter(const TokenFilter&) = delete;
  TokenFilter& operator=(const TokenFilter&) = delete;

  // Writes w[i] = exp(x[i] - x_max) for kept tokens and 0 for the others.
  // REQUIRES: x.size() == w.size() == vocab_size; x_max == max(x), finite; no NaN in x.
  void Apply(absl::Span<const float> x, float x_max, int32_t top_k, float top_p, float min_p, absl::Span<float> w);

 private:
  // Fills candidates_ (ascending ids) with the tokens whose x >= threshold.
  void Gather(absl::Span<const float> x, float threshold);
  // A threshold (never below `floor`) that the sample predicts leaves at least `count` tokens at
  // or above it, with a margin that grows with `attempt`; `floor` when the sample cannot tell.
  float SampleThreshold(absl::Span<const float> x, int32_t count, int attempt, float floor);
  // The last token of the shortest prefix of sel_[0, size) (in token order) whose mass reaches
  // target; permutes sel_.
  int32_t WeightedSelect(size_t size, double target);

  int32_t vocab_size_;
  std::vector<int32_t> candidates_;  // ascending ids
  std::vector<Candidate> sel_;       // candidates permuted by selection
  std::vector<int32_t> sample_;      // sample ids
  std::vector<std::pair<int32_t, float>> kept_;
};

// Draws a token from the weights w (zero = excluded): with S = sum w (double) the result is the
// smallest id j whose cumulative sum w[0..j] exceeds u * S, never a zero-weight token. Returns -1
// when every weight is zero. REQUIRES: 0 <= u < 1.
int32_t SampleFromWeights(absl::Span<const float> w, double u);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SAMPLING_TOKEN_FILTER_H_

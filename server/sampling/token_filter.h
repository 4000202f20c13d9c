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
// Cost O(vocab): a 4096-bucket histogram of (max x - x) finds the bucket that holds the top-k or
// top-p boundary, and only that bucket is selected/sorted exactly.
//
// Owns scratch sized for the vocabulary: requires external synchronization.

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace moeserve {

class TokenFilter {
 public:
  explicit TokenFilter(int32_t vocab_size);

  TokenFilter(const TokenFilter&) = delete;
  TokenFilter& operator=(const TokenFilter&) = delete;

  // Writes w[i] = exp(x[i] - x_max) for kept tokens and 0 for the others. `temperature` only sets
  // the histogram's resolution (buckets cover 64 nats of the unscaled logits).
  // REQUIRES: x.size() == w.size() == vocab_size; x_max == max(x), finite; no NaN in x.
  void Apply(absl::Span<const float> x, float x_max, float temperature, int32_t top_k,
             float top_p, float min_p, absl::Span<float> w);

 private:
  static constexpr int kNumBuckets = 4096;

  struct Cut {  // the last kept token of the prefix; bucket == kNumBuckets: no prefix limit
    int32_t bucket = kNumBuckets;
    int32_t token = -1;
  };

  void BuildHistogram(absl::Span<const float> x, float x_max, float temperature,
                      absl::Span<const float> w);
  // Fills candidates_ with the tokens of `bucket` that are not after `cut`, in ascending id.
  void GatherBucket(int32_t bucket, const Cut& cut, absl::Span<const float> x);
  Cut TopK(int32_t k, absl::Span<const float> x);
  Cut TopP(float top_p, const Cut& cut, absl::Span<const float> x, absl::Span<const float> w);

  int32_t vocab_size_;
  std::vector<uint16_t> bucket_;   // per token
  std::vector<int32_t> count_;     // per bucket
  std::vector<double> mass_;       // per bucket: sum of w
  std::vector<int32_t> candidates_;
};

// Draws a token from the weights w (zero = excluded): with S = sum w (double) the result is the
// smallest id j whose cumulative sum w[0..j] exceeds u * S, never a zero-weight token. Returns -1
// when every weight is zero. REQUIRES: 0 <= u < 1.
int32_t SampleFromWeights(absl::Span<const float> w, double u);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SAMPLING_TOKEN_FILTER_H_

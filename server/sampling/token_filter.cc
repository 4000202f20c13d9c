#include "server/sampling/token_filter.h"

#include <algorithm>
#include <cstddef>

#include "server/common/logging.h"
#include "server/sampling/vec_math.h"

namespace moeserve {
namespace {

// Strict total order of tokens: larger x first, then lower id.
struct Precedes {
  const float* x;
  bool operator()(int32_t a, int32_t b) const {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
  }
};

}  // namespace

TokenFilter::TokenFilter(int32_t vocab_size)
    : vocab_size_(vocab_size),
      bucket_(vocab_size),
      count_(kNumBuckets),
      mass_(kNumBuckets) {
  MS_CHECK(vocab_size > 0);
  candidates_.reserve(vocab_size);
}

void TokenFilter::BuildHistogram(absl::Span<const float> x, float x_max, float temperature,
                                 absl::Span<const float> w) {
  // Buckets of equal width over [0, range) of (x_max - x); the last one also takes the rest. The
  // map is monotone, so bucket order agrees with token order.
  const float range = 64.0f * std::max(1.0f, 1.0f / temperature);
  const float scale = static_cast<float>(kNumBuckets) / range;
  const float last = static_cast<float>(kNumBuckets - 1);
  const float* xp = x.data();
  uint16_t* bp = bucket_.data();
  for (int32_t i = 0; i < vocab_size_; ++i) {
    float b = (x_max - xp[i]) * scale;
    b = b < last ? b : last;
    bp[i] = static_cast<uint16_t>(static_cast<int32_t>(b));
  }
  std::fill(count_.begin(), count_.end(), 0);
  std::fill(mass_.begin(), mass_.end(), 0.0);
  for (int32_t i = 0; i < vocab_size_; ++i) {
    ++count_[bp[i]];
    mass_[bp[i]] += w[i];
  }
}

void TokenFilter::GatherBucket(int32_t bucket, const Cut& cut, absl::Span<const float> x) {
  candidates_.clear();
  const Precedes precedes{x.data()};
  const bool limited = cut.bucket == bucket;
  for (int32_t i = 0; i < vocab_size_; ++i) {
    if (bucket_[i] == bucket && !(limited && precedes(cut.token, i))) candidates_.push_back(i);
  }
}

TokenFilter::Cut TokenFilter::TopK(int32_t k, absl::Span<const float> x) {
  int32_t before = 0, b = 0;
  for (; b < kNumBuckets - 1; ++b) {
    if (before + count_[b] >= k) break;
    before += count_[b];
  }
  GatherBucket(b, Cut{}, x);
  const int32_t need = k - before;  // in [1, candidates_.size()]
  std::nth_element(candidates_.begin(), candidates_.begin() + (need - 1), candidates_.end(),
                   Precedes{x.data()});
  return Cut{b, candidates_[need - 1]};
}

TokenFilter::Cut TokenFilter::TopP(float top_p, const Cut& cut, absl::Span<const float> x,
                                   absl::Span<const float> w) {
  // Mass of the part of the cut bucket that top-k kept.
  double partial = 0.0;
  if (cut.bucket < kNumBuckets) {
    GatherBucket(cut.bucket, cut, x);
    for (int32_t id : candidates_) partial += w[id];
  }
  const int32_t last_bucket = std::min(cut.bucket, kNumBuckets - 1);
  double total = 0.0;
  for (int32_t b = 0; b <= last_bucket; ++b) total += b < cut.bucket ? mass_[b] : partial;
  const double target = static_cast<double>(top_p) * total;

  double before = 0.0;
  int32_t boundary = -1;
  for (int32_t b = 0; b <= last_bucket; ++b) {
    const double m = b < cut.bucket ? mass_[b] : partial;
    if (before + m >= target) {
      boundary = b;
      break;
    }
    before += m;
  }
  if (boundary < 0) return cut;  // rounding: everything already kept is needed

  GatherBucket(boundary, cut, x);
  std::sort(candidates_.begin(), candidates_.end(), Precedes{x.data()});
  for (int32_t id : candidates_) {
    before += w[id];
    if (before >= target) return Cut{boundary, id};
  }
  return Cut{boundary, candidates_.back()};
}

void TokenFilter::Apply(absl::Span<const float> x, float x_max, float temperature, int32_t top_k,
                        float top_p, float min_p, absl::Span<float> w) {
  MS_CHECK(static_cast<int32_t>(x.size()) == vocab_size_ && w.size() == x.size());
  ExpShifted(x, x_max, w);
  const bool use_k = top_k > 0 && top_k < vocab_size_;
  const bool use_p = top_p < 1.0f;
  const bool use_min_p = min_p > 0.0f;
  Cut cut;
  if (use_k || use_p) {
    BuildHistogram(x, x_max, temperature, w);
    if (use_k) cut = TopK(top_k, x);
    if (use_p) cut = TopP(top_p, cut, x, w);
  }
  float* wp = w.data();
  if (cut.bucket < kNumBuckets) {
    const Precedes precedes{x.data()};
    const uint16_t* bp = bucket_.data();
    const int32_t cut_bucket = cut.bucket;
    for (int32_t i = 0; i < vocab_size_; ++i) {
      const bool keep = bp[i] < cut_bucket || (bp[i] == cut_bucket && !precedes(cut.token, i));
      wp[i] = keep ? wp[i] : 0.0f;
    }
  }
  if (use_min_p) {
    for (int32_t i = 0; i < vocab_size_; ++i) wp[i] = wp[i] >= min_p ? wp[i] : 0.0f;
  }
}

int32_t SampleFromWeights(absl::Span<const float> w, double u) {
  const size_t n = w.size();
  if (n == 0) return -1;
  constexpr size_t kMaxBlocks = 512;
  const size_t block = std::max<size_t>(1024, (n + kMaxBlocks - 1) / kMaxBlocks);
  const size_t num_blocks = (n + block - 1) / block;
  double sums[kMaxBlocks];
  double total = 0.0;
  for (size_t b = 0; b < num_blocks; ++b) {
    const size_t begin = b * block, len = std::min(block, n - begin);
    sums[b] = SumAsDouble(w.subspan(begin, len));
    total += sums[b];
  }
  if (!(total > 0.0)) return -1;
  const double target = u * total;
  double cumulative = 0.0;
  for (size_t b = 0; b < num_blocks; ++b) {
    if (cumulative + sums[b] <= target) {
      cumulative += sums[b];
      continue;
    }
    // The crossing is in this block (or, by rounding, just after it): walk token by token.
    for (size_t i = b * block; i < n; ++i) {
      if (w[i] > 0.0f) {
        cumulative += w[i];
        if (cumulative > target) return static_cast<int32_t>(i);
      }
    }
    break;
  }
  for (size_t i = n; i-- > 0;) {
    if (w[i] > 0.0f) return static_cast<int32_t>(i);
  }
  return -1;
}

}  // namespace moeserve

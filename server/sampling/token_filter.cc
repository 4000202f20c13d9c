#include "server/sampling/token_filter.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "server/common/logging.h"
#include "server/sampling/vec_math.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace moeserve {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int32_t kSampleSize = 1024;

// Strict total order of tokens: larger x first, then lower id.
struct Precedes {
  const float* x;
  bool operator()(int32_t a, int32_t b) const { return x[a] > x[b] || (x[a] == x[b] && a < b); }
};

bool CandidatePrecedes(const TokenFilter::Candidate& a, const TokenFilter::Candidate& b) {
  return a.x > b.x || (a.x == b.x && a.id < b.id);
}

}  // namespace

TokenFilter::TokenFilter(int32_t vocab_size) : vocab_size_(vocab_size) {
  MS_CHECK(vocab_size > 0);
  candidates_.reserve(vocab_size);
  sel_.reserve(vocab_size);
  kept_.reserve(vocab_size);
  const int32_t stride = std::max(1, vocab_size / kSampleSize);
  for (int32_t i = stride / 2; i < vocab_size; i += stride) sample_.push_back(i);
}

void TokenFilter::Gather(absl::Span<const float> x, float threshold) {
  candidates_.clear();
  const float* p = x.data();
  int32_t i = 0;
#if defined(__SSE2__)
  const __m128 t = _mm_set1_ps(threshold);
  for (; i + 4 <= vocab_size_; i += 4) {
    int mask = _mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(p + i), t));
    while (mask != 0) {
      const int lane = __builtin_ctz(mask);
      candidates_.push_back(i + lane);
      mask &= mask - 1;
    }
  }
#endif
  for (; i < vocab_size_; ++i) {
    if (p[i] >= threshold) candidates_.push_back(i);
  }
}

float TokenFilter::SampleThreshold(absl::Span<const float> x, int32_t count, int attempt, float floor) {
  // Each sampled token stands for `stride` tokens; the margin grows fourfold with every attempt
  // that came up short.
  const double stride = static_cast<double>(vocab_size_) / sample_.size();
  const double rank = count / stride;
  const double margin = (8.0 + 2.0 * std::sqrt(rank) + rank / 4.0) * std::pow(4.0, attempt);
  const double widened = rank + margin;
  if (widened >= static_cast<double>(sample_.size())) return floor;
  sel_.clear();
  for (int32_t id : sample_) sel_.push_back({x[id], 0.0f, id});
  const auto nth = sel_.begin() + static_cast<ptrdiff_t>(widened);
  std::nth_element(sel_.begin(), nth, sel_.end(), CandidatePrecedes);
  return std::max(nth->x, floor);
}

int32_t TokenFilter::WeightedSelect(size_t size, double target) {
  size_t lo = 0, hi = size;
  double before = 0.0;  // mass of the tokens known to precede sel_[lo, hi)
  int32_t passed = -1;  // the last token known to be inside the prefix
  while (hi - lo > 16) {
    // Median-of-three pivot, moved to the end; partition the rest by "precedes the pivot".
    const size_t mid = lo + (hi - lo) / 2;
    size_t a = lo, b = mid, c = hi - 1;
    if (CandidatePrecedes(sel_[b], sel_[a])) std::swap(a, b);
    if (CandidatePrecedes(sel_[c], sel_[b])) std::swap(b, c);
    if (CandidatePrecedes(sel_[b], sel_[a])) std::swap(a, b);
    std::swap(sel_[b], sel_[hi - 1]);
    const Candidate pivot = sel_[hi - 1];
    const auto split = std::partition(sel_.begin() + lo, sel_.begin() + (hi - 1),
                                      [&](const Candidate& t) { return CandidatePrecedes(t, pivot); });
    const size_t p = static_cast<size_t>(split - sel_.begin());
    std::swap(sel_[p], sel_[hi - 1]);
    double upper = 0.0;
    for (size_t j = lo; j < p; ++j) upper += sel_[j].w;
    if (before + upper >= target) {
      hi = p;
    } else if (before + upper + pivot.w >= target) {
      return pivot.id;
    } else {
      before += upper + pivot.w;
      passed = pivot.id;
      lo = p + 1;
    }
  }
  std::sort(sel_.begin() + lo, sel_.begin() + hi, CandidatePrecedes);
  for (size_t j = lo; j < hi; ++j) {
    before += sel_[j].w;
    if (before >= target) return sel_[j].id;
  }
  // Rounding left the target just out of reach: keep everything considered.
  return hi > lo ? sel_[hi - 1].id : (passed >= 0 ? passed : sel_[0].id);
}

void TokenFilter::Apply(absl::Span<const float> x, float x_max, int32_t top_k, float top_p, float min_p,
                        absl::Span<float> w) {
  MS_CHECK(static_cast<int32_t>(x.size()) == vocab_size_ && w.size() == x.size());
  const bool use_k = top_k > 0 && top_k < vocab_size_;
  const bool use_p = top_p < 1.0f;
  const bool use_min_p = min_p > 0.0f;
  if (!use_k && !use_p && !use_min_p) {
    ExpShifted(x, x_max, w);
    return;
  }
  // No token below `floor` passes min-p: exp(x - x_max) < min_p there, by a margin far above
  // ExpShifted's error.
  const float floor = use_min_p ? x_max + std::log(min_p) - 1e-3f : -kInf;
  const float* xp = x.data();
  float* wp = w.data();
  int32_t cut = -1;  // last token of the kept prefix; -1: candidates_ are all in the prefix

  if (use_k) {
    // With top-p, Z is the mass of every top-k survivor, min-p failures included: the gather may
    // stop at the min-p floor only without top-p.
    const float k_floor = use_p ? -kInf : floor;
    for (int attempt = 0;; ++attempt) {
      const float t = SampleThreshold(x, top_k, attempt, k_floor);
      Gather(x, t);
      if (static_cast<int32_t>(candidates_.size()) >= top_k || t <= k_floor) break;
    }
    sel_.clear();
    for (int32_t id : candidates_) {
      wp[id] = ExpNonPositive(xp[id] - x_max);
      sel_.push_back({xp[id], wp[id], id});
    }
    size_t kept = sel_.size();
    if (kept > static_cast<size_t>(top_k)) {
      kept = top_k;
      std::nth_element(sel_.begin(), sel_.begin() + (kept - 1), sel_.end(), CandidatePrecedes);
      cut = sel_[kept - 1].id;
    }
    if (use_p) {
      double z = 0.0;
      for (size_t j = 0; j < kept; ++j) z += sel_[j].w;
      cut = WeightedSelect(kept, static_cast<double>(top_p) * z);
    }
  } else if (use_p) {
    ExpShifted(x, x_max, w);
    const double target = static_cast<double>(top_p) * SumAsDouble(w);
    // Windows of growing width below the top token (w < e^-64 beyond the last: then everything).
    constexpr float kWindows[] = {4.0f, 8.0f, 16.0f, 32.0f, 64.0f};
    for (int attempt = 0;; ++attempt) {
      const float t = attempt < 5 ? std::max(x_max - kWindows[attempt], floor) : floor;
      Gather(x, t);
      double mass = 0.0;
      for (int32_t id : candidates_) mass += wp[id];
      if (mass >= target || t <= floor) break;
    }
    sel_.clear();
    for (int32_t id : candidates_) sel_.push_back({xp[id], wp[id], id});
    cut = WeightedSelect(sel_.size(), target);
  } else {
    Gather(x, floor);
    for (int32_t id : candidates_) wp[id] = ExpNonPositive(xp[id] - x_max);
  }

  // Kept: candidates not after the cut and passing min-p.
  const Precedes precedes{xp};
  kept_.clear();
  for (int32_t id : candidates_) {
    if (cut >= 0 && precedes(cut, id)) continue;
    if (use_min_p && !(wp[id] >= min_p)) continue;
    kept_.emplace_back(id, wp[id]);
  }
  std::fill(w.begin(), w.end(), 0.0f);
  for (const auto& [id, weight] : kept_) wp[id] = weight;
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

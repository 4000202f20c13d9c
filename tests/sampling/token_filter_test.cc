#include "server/sampling/token_filter.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "server/sampling/vec_math.h"

namespace moeserve {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// The ids the filter keeps (nonzero weight or, for zero-probability tokens, kept by the prefix
// rules: those cannot be told apart through w, so tests use finite, close logits).
std::vector<int32_t> Kept(const std::vector<float>& x, int32_t top_k, float top_p, float min_p) {
  TokenFilter filter(static_cast<int32_t>(x.size()));
  std::vector<float> w(x.size());
  bool has_nan = false;
  const float max = MaxValue(x, &has_nan);
  filter.Apply(x, max, top_k, top_p, min_p, absl::MakeSpan(w));
  std::vector<int32_t> kept;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] > 0.0f) kept.push_back(static_cast<int32_t>(i));
  }
  return kept;
}

// Straightforward reference: full sort by (x desc, id asc), then the definitions of token_filter.h.
std::vector<int32_t> ReferenceKept(const std::vector<float>& x, int32_t top_k, float top_p, float min_p) {
  const int32_t n = static_cast<int32_t>(x.size());
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  const float max = x[order[0]];
  std::vector<float> w(n);
  for (int32_t i = 0; i < n; ++i) w[i] = ExpNonPositive(x[i] - max);
  int32_t len = (top_k > 0 && top_k < n) ? top_k : n;
  if (top_p < 1.0f) {
    double z = 0.0;
    for (int32_t j = 0; j < len; ++j) z += w[order[j]];
    double cumulative = 0.0;
    for (int32_t j = 0; j < len; ++j) {
      cumulative += w[order[j]];
      if (cumulative >= top_p * z) {
        len = j + 1;
        break;
      }
    }
  }
  std::vector<int32_t> kept;
  for (int32_t j = 0; j < len; ++j) {
    if (w[order[j]] > 0.0f && w[order[j]] >= min_p) kept.push_back(order[j]);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

using Ids = std::vector<int32_t>;

TEST(TokenFilterTest, NoFilterKeepsEverythingWithExpWeights) {
  const std::vector<float> x = {1.0f, 3.0f, -kInf, 2.0f};
  TokenFilter filter(4);
  std::vector<float> w(4);
  filter.Apply(x, 3.0f, 0, 1.0f, 0.0f, absl::MakeSpan(w));
  EXPECT_EQ(w[1], 1.0f);
  EXPECT_NEAR(w[0], std::exp(-2.0), 1e-7);
  EXPECT_EQ(w[2], 0.0f);
  EXPECT_NEAR(w[3], std::exp(-1.0), 1e-7);
}

TEST(TokenFilterTest, TopKBreaksTiesTowardsLowerIds) {
  const std::vector<float> x = {1.0f, 3.0f, 2.0f, 3.0f, 0.0f};
  EXPECT_EQ(Kept(x, 1, 1.0f, 0.0f), (Ids{1}));
  EXPECT_EQ(Kept(x, 2, 1.0f, 0.0f), (Ids{1, 3}));
  EXPECT_EQ(Kept(x, 3, 1.0f, 0.0f), (Ids{1, 2, 3}));
  EXPECT_EQ(Kept(x, 5, 1.0f, 0.0f), (Ids{0, 1, 2, 3, 4}));   // k == vocab: off
  EXPECT_EQ(Kept(x, -1, 1.0f, 0.0f), (Ids{0, 1, 2, 3, 4}));  // -1: off
  const std::vector<float> flat(6, 0.5f);
  EXPECT_EQ(Kept(flat, 4, 1.0f, 0.0f), (Ids{0, 1, 2, 3}));
}

TEST(TokenFilterTest, TopPKeepsTheShortestPrefixReachingP) {
  // Probabilities 0.2, 0.5, 0.3: order 1, 2, 0.
  const std::vector<float> x = {std::log(0.2f), std::log(0.5f), std::log(0.3f)};
  EXPECT_EQ(Kept(x, 0, 0.45f, 0.0f), (Ids{1}));
  EXPECT_EQ(Kept(x, 0, 0.55f, 0.0f), (Ids{1, 2}));
  EXPECT_EQ(Kept(x, 0, 0.79f, 0.0f), (Ids{1, 2}));
  EXPECT_EQ(Kept(x, 0, 0.81f, 0.0f), (Ids{0, 1, 2}));
  EXPECT_EQ(Kept(x, 0, 1e-6f, 0.0f), (Ids{1}));  // never empty
}

TEST(TokenFilterTest, TopPKeepsTheTokenThatReachesPExactly) {
  // Equal logits weigh exactly 1 each, so with top_p = m / n the cumulative mass meets
  // top_p * Z exactly at the m-th token: it completes the nucleus and the next is out (the cut
  // compares with >=, not >). Every m puts the boundary at every rank, so also on the pivots of
  // the quickselect that 64 tokens take (4 take the sorted tail); top-k n/2 renormalizes over half.
  for (const int32_t n : {4, 64}) {
    const std::vector<float> flat(n, 0.25f);
    for (const int32_t k : {0, n / 2}) {
      const int32_t z = k == 0 ? n : k;
      for (int32_t m = 1; m < z; ++m) {
        const float p = static_cast<float>(m) / static_cast<float>(z);  // exact: z is a power of 2
        Ids want(static_cast<size_t>(m));
        std::iota(want.begin(), want.end(), 0);
        EXPECT_EQ(Kept(flat, k, p, 0.0f), want) << "n " << n << " top_k " << k << " top_p " << m << "/" << z;
      }
    }
  }
}

TEST(TokenFilterTest, TopPRenormalizesOverTopK) {
  // Probabilities 0.4, 0.3, 0.2, 0.1. Alone, top_p 0.55 needs two tokens (0.4 < 0.55); after
  // top-k 2 the first holds 0.4 / 0.7 = 0.57 of the mass, enough alone.
  const std::vector<float> x = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
  EXPECT_EQ(Kept(x, 0, 0.55f, 0.0f), (Ids{0, 1}));
  EXPECT_EQ(Kept(x, 2, 0.55f, 0.0f), (Ids{0}));
  EXPECT_EQ(Kept(x, 3, 0.99f, 0.0f), (Ids{0, 1, 2}));
}

TEST(TokenFilterTest, MinPIsRelativeToTheTopToken) {
  // Relative weights 1, 0.5, 0.05, 0.2.
  const std::vector<float> x = {0.0f, std::log(0.5f), std::log(0.05f), std::log(0.2f)};
  EXPECT_EQ(Kept(x, 0, 1.0f, 0.1f), (Ids{0, 1, 3}));
  EXPECT_EQ(Kept(x, 0, 1.0f, 0.3f), (Ids{0, 1}));
  EXPECT_EQ(Kept(x, 0, 1.0f, 1.0f), (Ids{0}));
  EXPECT_EQ(Kept(x, 3, 1.0f, 0.1f), (Ids{0, 1, 3}));
  EXPECT_EQ(Kept(x, 2, 1.0f, 0.1f), (Ids{0, 1}));
}

TEST(TokenFilterTest, TopPOverTopKCountsTokensThatFailMinP) {
  // Relative weights 1, 0.55, 0.47, 0.47, ~0. Top-k 4 keeps the first four, Z = 2.49, and top_p 0.6
  // needs 1.494: two tokens. Min-p 0.5 then drops none of those two; the 0.47s count towards Z
  // although min-p removes them.
  const std::vector<float> x = {0.0f, std::log(0.55f), std::log(0.47f), std::log(0.47f), -10.0f};
  EXPECT_EQ(ReferenceKept(x, 4, 0.6f, 0.5f), (Ids{0, 1}));
  EXPECT_EQ(Kept(x, 4, 0.6f, 0.5f), (Ids{0, 1}));
}

// Random rows with many ties and a wide range of spreads against the sort-based reference.
TEST(TokenFilterTest, MatchesReferenceOnRandomRows) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int32_t n = std::uniform_int_distribution<int32_t>(1, 3000)(rng);
    const float spread = std::vector<float>{0.01f, 1.0f, 5.0f, 50.0f, 500.0f}[trial % 5];
    const bool quantized = trial % 3 == 0;  // many exact ties
    std::normal_distribution<float> normal(0.0f, spread);
    std::vector<float> x(n);
    for (float& v : x) {
      v = normal(rng);
      if (quantized) v = std::round(v);
    }
    if (trial % 7 == 0) x[rng() % n] = -kInf;
    x[rng() % n] = std::max(x[0], 0.0f) + 1.0f;  // some finite maximum
    const int32_t top_k = std::vector<int32_t>{0, 1, 5, 40, n / 2, n}[trial % 6];
    const float top_p = std::vector<float>{1.0f, 0.9f, 0.5f, 0.99f, 0.1f}[(trial / 5) % 5];
    const float min_p = std::vector<float>{0.0f, 0.0f, 0.05f, 0.3f}[trial % 4];
    const float temperature = std::vector<float>{1.0f, 0.05f, 2.0f}[trial % 3];
    for (float& v : x) v /= temperature;
    ASSERT_EQ(Kept(x, top_k, top_p, min_p), ReferenceKept(x, top_k, top_p, min_p))
        << "trial " << trial << " n " << n << " k " << top_k << " p " << top_p << " min_p " << min_p;
  }
}

TEST(TokenFilterTest, SampleFromWeightsWalksCumulativeInIdOrder) {
  const std::vector<float> w = {0.0f, 1.0f, 0.0f, 3.0f};
  EXPECT_EQ(SampleFromWeights(w, 0.0), 1);
  EXPECT_EQ(SampleFromWeights(w, 0.24), 1);
  EXPECT_EQ(SampleFromWeights(w, 0.25), 3);  // cumulative must exceed u * total
  EXPECT_EQ(SampleFromWeights(w, 0.999999), 3);
  EXPECT_EQ(SampleFromWeights(std::vector<float>{0.0f, 0.0f}, 0.5), -1);
  EXPECT_EQ(SampleFromWeights(std::vector<float>{}, 0.5), -1);
}

TEST(TokenFilterTest, SampleFromWeightsAcrossBlocks) {
  std::vector<float> w(5000, 0.0f);
  w[10] = 1.0f;
  w[2047] = 1.0f;
  w[2048] = 1.0f;
  w[4999] = 1.0f;
  EXPECT_EQ(SampleFromWeights(w, 0.1), 10);
  EXPECT_EQ(SampleFromWeights(w, 0.3), 2047);
  EXPECT_EQ(SampleFromWeights(w, 0.6), 2048);
  EXPECT_EQ(SampleFromWeights(w, 0.9), 4999);
  EXPECT_EQ(SampleFromWeights(w, std::nextafter(1.0, 0.0)), 4999);
}

}  // namespace
}  // namespace moeserve

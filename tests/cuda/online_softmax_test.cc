// The online-softmax state the attention kernels share (cuda/online_softmax.cuh), compiled for the
// host: fed a row block by block it gives the two-pass softmax's weighted sum, in either
// exponential base, and its log-sum-exp merges split rows as the split-KV combines do.

#include <cmath>
#include <random>
#include <vector>

#include "cuda/online_softmax.cuh"
#include "gtest/gtest.h"

namespace moeserve::kernels {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

struct Row {
  std::vector<float> scores;
  std::vector<float> values;
};

Row RandomRow(std::mt19937& rng, int n) {
  std::normal_distribution<float> dist(0.0f, 4.0f);
  Row r;
  for (int i = 0; i < n; ++i) {
    r.scores.push_back(dist(rng));
    r.values.push_back(dist(rng));
  }
  return r;
}

// Σ softmax(s)_j v_j and log Σ exp(s_j), two passes in double.
std::pair<double, double> TwoPass(const Row& r, size_t begin, size_t end) {
  double mx = -INFINITY;
  for (size_t j = begin; j < end; ++j) mx = std::max<double>(mx, r.scores[j]);
  double sum = 0.0, acc = 0.0;
  for (size_t j = begin; j < end; ++j) {
    const double w = std::exp(r.scores[j] - mx);
    sum += w;
    acc += w * r.values[j];
  }
  return {acc / sum, mx + std::log(sum)};
}

// Feeds scores [begin, end) of `r` in blocks of `block` as the kernels do (scores scaled by
// `scale` first); returns the normalised weighted sum of the values and leaves the state.
template <SoftmaxBase kBase>
float Feed(const Row& r, size_t begin, size_t end, size_t block, float scale, OnlineSoftmax<kBase>& state) {
  float acc = 0.0f;
  for (size_t b = begin; b < end; b += block) {
    const size_t e = std::min(end, b + block);
    float block_max = -INFINITY;
    for (size_t j = b; j < e; ++j) block_max = std::max(block_max, r.scores[j] * scale);
    const float corr = state.Rescale(block_max);
    if (b == begin) {
      EXPECT_EQ(corr, 0.0f) << "the first block has nothing to rescale";
    }
    acc *= corr;
    for (size_t j = b; j < e; ++j) {
      const float w = state.Weight(r.scores[j] * scale);
      state.l += w;
      acc += w * r.values[j];
    }
  }
  return acc * state.InvSum();
}

TEST(OnlineSoftmaxTest, BlockByBlockMatchesTwoPassInBothBases) {
  std::mt19937 rng(3);
  for (int n : {1, 2, 15, 16, 17, 100, 1000}) {
    for (size_t block : {size_t{1}, size_t{7}, size_t{16}, size_t{4096}}) {
      const Row r = RandomRow(rng, n);
      const auto [want, want_lse] = TwoPass(r, 0, n);
      OnlineSoftmax<SoftmaxBase::kE> e;
      EXPECT_NEAR(Feed(r, 0, n, block, 1.0f, e), want, 1e-4 * (1 + std::abs(want))) << n << " " << block;
      EXPECT_NEAR(e.LogSumExp(), want_lse, 1e-4 * (1 + std::abs(want_lse)));
      OnlineSoftmax<SoftmaxBase::k2> two;  // scores pre-multiplied by log2 e
      EXPECT_NEAR(Feed(r, 0, n, block, kLog2e, two), want, 1e-4 * (1 + std::abs(want))) << n << " " << block;
      EXPECT_NEAR(two.LogSumExp() / kLog2e, want_lse, 1e-4 * (1 + std::abs(want_lse)));
    }
  }
}

TEST(OnlineSoftmaxTest, LogSumExpMergesSplitsAsTheCombineKernelsDo) {
  std::mt19937 rng(5);
  const Row r = RandomRow(rng, 300);
  const auto [want, want_lse] = TwoPass(r, 0, r.scores.size());
  for (size_t splits : {size_t{2}, size_t{3}, size_t{7}}) {
    const size_t per = (r.scores.size() + splits - 1) / splits;
    std::vector<float> out, lse;
    for (size_t s = 0; s < splits; ++s) {
      OnlineSoftmax<SoftmaxBase::k2> state;
      out.push_back(Feed(r, s * per, std::min(r.scores.size(), (s + 1) * per), 32, kLog2e, state));
      lse.push_back(state.LogSumExp());
    }
    float mx = -INFINITY;
    for (float x : lse) mx = std::max(mx, x);
    double num = 0.0, den = 0.0;
    for (size_t s = 0; s < splits; ++s) {
      const double w = std::exp2(lse[s] - mx);
      num += w * out[s];
      den += w;
    }
    EXPECT_NEAR(num / den, want, 1e-4 * (1 + std::abs(want))) << splits;
  }
}

TEST(OnlineSoftmaxTest, EmptyRowHasNoWeight) {
  OnlineSoftmax<SoftmaxBase::kE> e;
  EXPECT_EQ(e.InvSum(), 0.0f);
  EXPECT_EQ(e.LogSumExp(), -INFINITY);
  OnlineSoftmax<SoftmaxBase::k2> two;
  EXPECT_EQ(two.LogSumExp(), -INFINITY);
  // A later block with a larger maximum scales what came before down, never up.
  two.Rescale(1.0f);
  two.l += two.Weight(1.0f);
  EXPECT_FLOAT_EQ(two.Rescale(3.0f), 0.25f);
  EXPECT_FLOAT_EQ(two.l, 0.25f);
  EXPECT_FLOAT_EQ(two.Rescale(2.0f), 1.0f);  // a smaller maximum leaves the state
}

}  // namespace
}  // namespace moeserve::kernels

// MoeRoute: hand-computed cases for each method (Mixtral greedy, DeepSeek-V2 group_limited_greedy,
// DeepSeek-V3 noaux_tc) and a random comparison against a naive double-precision router.

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "tests/backend/backend_test_util.h"

namespace moeserve {
namespace {

using ::moeserve::testing::Empty;
using ::moeserve::testing::MakeF32;
using ::moeserve::testing::Random;
using ::moeserve::testing::ReadF32;
using ::moeserve::testing::ReadI32;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;

class MoeRouteTest : public ::testing::Test {
 protected:
  struct Result {
    absl::Status status;
    std::vector<int32_t> ids;
    std::vector<float> weights;
  };
  Result Route(const std::vector<float>& logits, int64_t E, const std::vector<float>& bias, const MoeRoutingParams& p) {
    const int64_t T = static_cast<int64_t>(logits.size()) / E;
    Tensor ids = Empty(b_, DType::kI32, Shape{T, p.top_k});
    Tensor w = Empty(b_, DType::kF32, Shape{T, p.top_k});
    Result r;
    r.status =
        b_.MoeRoute(MakeF32(b_, Shape{T, E}, logits), bias.empty() ? Tensor() : MakeF32(b_, Shape{E}, bias), p, ids, w);
    if (r.status.ok()) {
      r.ids = testing::ReadI32(b_, ids);
      r.weights = ReadF32(b_, w);
    }
    return r;
  }
  CpuBackend b_{2};
};

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

TEST_F(MoeRouteTest, MixtralSoftmaxTopKNormalised) {
  MoeRoutingParams p;  // softmax, greedy, top_k 2, norm, scale 1
  auto r = Route({0, 1, 2, 3}, 4, {}, p);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(r.ids, ElementsAre(3, 2));
  // softmax then renormalised over {3, 2}: e^3 / (e^3 + e^2) = sigmoid(1).
  EXPECT_THAT(r.weights, ElementsAre(FloatNear(Sigmoid(1), 1e-6), FloatNear(Sigmoid(-1), 1e-6)));
}

TEST_F(MoeRouteTest, TiesPickTheLowerIndex) {
  MoeRoutingParams p;
  p.top_k = 3;
  auto r = Route({1, 2, 1, 2, 1}, 5, {}, p);
  ASSERT_TRUE(r.status.ok());
  EXPECT_THAT(r.ids, ElementsAre(1, 3, 0));
}

TEST_F(MoeRouteTest, GreedyWithoutNormKeepsSoftmaxProbabilities) {
  MoeRoutingParams p;
  p.norm_topk_prob = false;
  p.routed_scaling_factor = 16.0f;
  auto r = Route({0, std::log(3.0f), std::log(4.0f)}, 3, {}, p);  // probabilities 1/8, 3/8, 4/8
  ASSERT_TRUE(r.status.ok());
  EXPECT_THAT(r.ids, ElementsAre(2, 1));
  EXPECT_THAT(r.weights, ElementsAre(FloatNear(8.0f, 1e-5), FloatNear(6.0f, 1e-5)));
}

TEST_F(MoeRouteTest, DeepSeekV2GroupLimitedGreedyMasksGroups) {
  // 8 experts in 4 groups of 2. Group maxima: g0 5, g1 3, g2 4, g3 -5: groups 0 and 2 stay.
  // Expert 2 (logit 3) beats experts 1 and 5 globally but its group is masked out.
  const std::vector<float> logits = {5, -5, 3, 3, 4, -5, -5, -5};
  MoeRoutingParams p;
  p.top_k = 3;
  p.method = MoeTopkMethod::kGroupLimitedGreedy;
  p.n_group = 4;
  p.topk_group = 2;
  p.norm_topk_prob = false;
  p.routed_scaling_factor = 2.0f;
  auto r = Route(logits, 8, {}, p);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(r.ids, ElementsAre(0, 4, 1));  // 1 and 5 tie at -5: the lower index
  double z = 0;
  for (float l : logits) z += std::exp(l);
  EXPECT_THAT(r.weights, ElementsAre(FloatNear(2 * std::exp(5.0) / z, 1e-6), FloatNear(2 * std::exp(4.0) / z, 1e-6),
                                     FloatNear(2 * std::exp(-5.0) / z, 1e-6)));
  // With greedy the masked expert wins its place.
  p.method = MoeTopkMethod::kGreedy;
  EXPECT_THAT(Route(logits, 8, {}, p).ids, ElementsAre(0, 4, 2));
}

TEST_F(MoeRouteTest, DeepSeekV3NoAuxTcChoosesByBiasWeighsWithoutIt) {
  // sigmoid scores s = [.5 .5 .5 .5 .5 .5 σ(1) σ(-1)]; choice = s + bias =
  // [.6 .5 .8 .25 .5 .55 .731 .869]. Group top-2 sums: g0 1.1, g1 1.05, g2 1.05, g3 1.6, so g3
  // and g0 stay; expert 2 (the best single choice outside them) is masked. Expert 7 is chosen
  // first (biased .869) but weighted by its unbiased σ(-1).
  const std::vector<float> logits = {0, 0, 0, 0, 0, 0, 1, -1};
  const std::vector<float> bias = {0.1f, 0.0f, 0.3f, -0.25f, 0.0f, 0.05f, 0.0f, 0.6f};
  MoeRoutingParams p;
  p.top_k = 2;
  p.scoring = MoeScoring::kSigmoid;
  p.method = MoeTopkMethod::kNoAuxTc;
  p.n_group = 4;
  p.topk_group = 2;
  p.norm_topk_prob = true;
  p.routed_scaling_factor = 2.5f;
  auto r = Route(logits, 8, bias, p);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(r.ids, ElementsAre(7, 6));
  const double s7 = Sigmoid(-1), s6 = Sigmoid(1);  // s6 + s7 = 1
  EXPECT_THAT(r.weights, ElementsAre(FloatNear(2.5 * s7, 1e-6), FloatNear(2.5 * s6, 1e-6)));

  p.norm_topk_prob = false;
  p.routed_scaling_factor = 1.0f;
  p.top_k = 3;
  r = Route(logits, 8, bias, p);
  ASSERT_TRUE(r.status.ok());
  EXPECT_THAT(r.ids, ElementsAre(7, 6, 0));
  EXPECT_THAT(r.weights, ElementsAre(FloatNear(s7, 1e-6), FloatNear(s6, 1e-6), FloatNear(0.5, 1e-6)));

  // Ranking groups by their best expert instead (V2's rule) would keep g1; noaux_tc does not.
  p.method = MoeTopkMethod::kGroupLimitedGreedy;
  EXPECT_FALSE(Route(logits, 8, bias, p).status.ok());  // bias is noaux_tc-only
}

TEST_F(MoeRouteTest, RejectsBadParams) {
  MoeRoutingParams p;
  p.top_k = 5;
  EXPECT_THAT(Route({0, 1, 2, 3}, 4, {}, p).status.message(), HasSubstr("MoeRoute: top_k 5"));
  p.top_k = 2;
  p.method = MoeTopkMethod::kGroupLimitedGreedy;
  p.n_group = 3;
  EXPECT_THAT(Route({0, 1, 2, 3}, 4, {}, p).status.message(), HasSubstr("n_group 3"));
  p.n_group = 2;
  p.topk_group = 3;
  EXPECT_THAT(Route({0, 1, 2, 3}, 4, {}, p).status.message(), HasSubstr("topk_group 3"));
  p.topk_group = 1;
  p.top_k = 3;  // only 2 experts in one group
  EXPECT_EQ(Route({0, 1, 2, 3}, 4, {}, p).status.code(), absl::StatusCode::kInvalidArgument);
  p.top_k = 2;
  p.method = MoeTopkMethod::kNoAuxTc;
  EXPECT_THAT(Route({0, 1, 2, 3}, 4, {}, p).status.message(), HasSubstr("correction_bias"));
  Tensor ids = Empty(b_, DType::kI32, Shape{1, 3});
  Tensor w = Empty(b_, DType::kF32, Shape{1, 2});
  EXPECT_THAT(b_.MoeRoute(MakeF32(b_, Shape{1, 4}, {0, 1, 2, 3}), Tensor(), MoeRoutingParams{}, ids, w).message(),
              HasSubstr("MoeRoute: topk_ids has shape [1, 3], expected [1, 2]"));
}

// A direct transcription of the Hugging Face routers in double precision.
void NaiveRoute(const std::vector<float>& logits, int64_t T, int64_t E, const std::vector<float>& bias,
                const MoeRoutingParams& p, std::vector<int32_t>* ids, std::vector<double>* weights) {
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> s(E), c(E);
    double mx = -INFINITY, z = 0;
    for (int64_t e = 0; e < E; ++e) mx = std::max(mx, static_cast<double>(logits[t * E + e]));
    for (int64_t e = 0; e < E; ++e) z += std::exp(logits[t * E + e] - mx);
    for (int64_t e = 0; e < E; ++e) {
      s[e] = p.scoring == MoeScoring::kSoftmax ? std::exp(logits[t * E + e] - mx) / z : Sigmoid(logits[t * E + e]);
      c[e] = s[e] + (bias.empty() ? 0.0 : bias[e]);
    }
    std::vector<bool> allowed(E, true);
    if (p.method != MoeTopkMethod::kGreedy) {
      const int64_t G = p.n_group, n = E / G;
      std::vector<double> gs(G);
      for (int64_t g = 0; g < G; ++g) {
        std::vector<double> v(c.begin() + g * n, c.begin() + (g + 1) * n);
        std::sort(v.rbegin(), v.rend());
        gs[g] = p.method == MoeTopkMethod::kGroupLimitedGreedy ? v[0] : v[0] + v[1];
      }
      std::vector<int64_t> order(G);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return gs[a] > gs[b]; });
      std::fill(allowed.begin(), allowed.end(), false);
      for (int64_t r = 0; r < p.topk_group; ++r)
        for (int64_t e = order[r] * n; e < (order[r] + 1) * n; ++e) allowed[e] = true;
    }
    std::vector<int64_t> order;
    for (int64_t e = 0; e < E; ++e)
      if (allowed[e]) order.push_back(e);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return c[a] > c[b]; });
    double sum = 0;
    for (int64_t r = 0; r < p.top_k; ++r) sum += s[order[r]];
    for (int64_t r = 0; r < p.top_k; ++r) {
      ids->push_back(static_cast<int32_t>(order[r]));
      double w = s[order[r]];
      if (p.norm_topk_prob) w /= sum + 1e-20;
      weights->push_back(w * p.routed_scaling_factor);
    }
  }
}

TEST_F(MoeRouteTest, RandomMatchesNaive) {
  std::mt19937 rng(7);
  struct Case {
    int64_t E;
    MoeRoutingParams p;
  };
  auto make = [](int32_t k, MoeScoring sc, MoeTopkMethod m, int32_t g, int32_t tg, bool norm, float scale) {
    MoeRoutingParams p;
    p.top_k = k, p.scoring = sc, p.method = m, p.n_group = g, p.topk_group = tg;
    p.norm_topk_prob = norm, p.routed_scaling_factor = scale;
    return p;
  };
  const std::vector<Case> cases = {
      {8, make(2, MoeScoring::kSoftmax, MoeTopkMethod::kGreedy, 1, 1, true, 1.0f)},    // Mixtral
      {64, make(6, MoeScoring::kSoftmax, MoeTopkMethod::kGreedy, 1, 1, false, 1.0f)},  // V2-Lite
      {160, make(6, MoeScoring::kSoftmax, MoeTopkMethod::kGroupLimitedGreedy, 8, 3, false, 16.0f)},
      {256, make(8, MoeScoring::kSigmoid, MoeTopkMethod::kNoAuxTc, 8, 4, true, 2.5f)},  // V3
      {16, make(4, MoeScoring::kSigmoid, MoeTopkMethod::kNoAuxTc, 1, 1, false, 1.0f)},
      {12, make(3, MoeScoring::kSoftmax, MoeTopkMethod::kNoAuxTc, 3, 2, true, 1.0f)},
  };
  for (const Case& c : cases) {
    const int64_t T = 37;
    auto logits = Random(rng, T * c.E, 2.0f);
    std::vector<float> bias;
    if (c.p.method == MoeTopkMethod::kNoAuxTc) bias = Random(rng, c.E, 0.1f);
    auto r = Route(logits, c.E, bias, c.p);
    ASSERT_TRUE(r.status.ok()) << r.status;
    std::vector<int32_t> ids;
    std::vector<double> weights;
    NaiveRoute(logits, T, c.E, bias, c.p, &ids, &weights);
    EXPECT_THAT(r.ids, ElementsAreArray(ids)) << "E=" << c.E;
    EXPECT_LE(testing::RelErr(r.weights, weights), testing::kTol) << "E=" << c.E;
  }
}

}  // namespace
}  // namespace moeserve

// The fp8-activation (W8A8) MoE path: when it is dispatched and its workspace
// (cuda/moe_fp8_plan.h), and its CPU reference (server/backend/cpu/moe_w8a8_reference.h).

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "absl/types/span.h"
#include "cuda/moe_fp8_plan.h"
#include "cuda/moe_layout.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/moe_w8a8_reference.h"

namespace moeserve {
namespace {

TEST(MoeW8A8Test, DispatchNeedsFp8WeightsAndAFullTilePerExpertOnAverage) {
  // V2-Lite: 64 routed + 2 fused shared experts, 6 + 2 pairs per token.
  EXPECT_FALSE(kernels::MoeUseW8A8(true, 1, 8, 66));
  EXPECT_FALSE(kernels::MoeUseW8A8(true, 256, 8, 66));    // decode batch: 31 rows per expert
  EXPECT_FALSE(kernels::MoeUseW8A8(true, 527, 8, 66));    // 4216 pairs < 64 · 66 = 4224
  EXPECT_TRUE(kernels::MoeUseW8A8(true, 528, 8, 66));     // 4224
  EXPECT_TRUE(kernels::MoeUseW8A8(true, 2048, 8, 66));    // a prefill chunk
  EXPECT_FALSE(kernels::MoeUseW8A8(false, 2048, 8, 66));  // bf16 weights: never
  // V3: 256 experts, top-8 (+1 shared): 64 · 257 / 9 → from 1828 tokens.
  EXPECT_FALSE(kernels::MoeUseW8A8(true, 1827, 9, 257));
  EXPECT_TRUE(kernels::MoeUseW8A8(true, 1828, 9, 257));
  EXPECT_FALSE(kernels::MoeUseW8A8(true, 0, 8, 66));
  EXPECT_FALSE(kernels::MoeUseW8A8(true, 100, 8, 0));
}

TEST(MoeW8A8Test, WorkspaceIsAlignedAndHoldsEveryBuffer) {
  const int64_t T = 1000, d = 2048, I = 1408, rows = kernels::MoeMaxRows(T * 8, 66);
  const kernels::MoeW8A8Workspace w = kernels::PlanMoeW8A8Workspace(T, d, rows, I);
  for (int64_t off : {w.xq, w.xs, w.hq, w.hs, w.total_bytes}) EXPECT_EQ(off % 256, 0) << off;
  EXPECT_GE(w.xs, w.xq + T * d);
  EXPECT_GE(w.hq, w.xs + T * (d / 128) * 4);
  EXPECT_GE(w.hs, w.hq + rows * I);
  EXPECT_GE(w.total_bytes, w.hs + rows * (I / 128) * 4);
  EXPECT_EQ(kernels::MoeFp8GemmSharedBytes(), 3 * (64 * 128 + 128 * 128));
}

TEST(MoeW8A8Test, ReferenceQuantizesPerBlockOfOneRow) {
  std::mt19937 rng(5);
  std::vector<float> x(2 * 256);
  for (float& v : x) v = std::uniform_real_distribution<float>(-3.0f, 3.0f)(rng);
  x[7] = 10.0f;                                       // block 0's amax
  std::fill(x.begin() + 384, x.begin() + 512, 0.0f);  // an all-zero block stays zero
  std::vector<float> q = x;
  QuantizeDequantizeFp8Blocks(absl::MakeSpan(q), 256);
  EXPECT_FLOAT_EQ(q[7], 10.0f);  // amax maps to 448 exactly
  for (size_t i = 0; i < x.size(); ++i) {
    const float amax = i < 128 ? 10.0f : 3.0f;
    EXPECT_LE(std::fabs(q[i] - x[i]), std::max(std::fabs(x[i]) / 16.0f, amax / 448.0f / 64.0f) * 1.001f) << i;
  }
  for (size_t i = 384; i < 512; ++i) EXPECT_EQ(q[i], 0.0f);
}

TEST(MoeW8A8Test, ReferenceIsCloseToTheUnquantizedMoe) {
  // 2 tokens, 3 experts (the last one shared), top-1, d = I = 128.
  const int64_t T = 2, E = 3, d = 128, I = 128;
  std::mt19937 rng(9);
  auto rnd = [&](int64_t n, float a) {
    std::vector<float> v(n);
    for (float& f : v) f = std::uniform_real_distribution<float>(-a, a)(rng);
    return v;
  };
  const std::vector<float> x = rnd(T * d, 1.0f), gu = rnd(E * 2 * I * d, 0.1f), dn = rnd(E * d * I, 0.1f);
  const std::vector<int32_t> ids = {1, 0};
  const std::vector<float> wts = {0.7f, 0.4f};
  const std::vector<float> got = MoeExpertsW8A8Reference({.x = x,
                                                          .ids = ids,
                                                          .weights = wts,
                                                          .gate_up = gu,
                                                          .down = dn,
                                                          .tokens = T,
                                                          .hidden = d,
                                                          .intermediate = I,
                                                          .top_k = 1,
                                                          .num_experts = E,
                                                          .num_shared = 1});
  // Unquantized: fp32 throughout.
  double num = 0, den = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < d; ++c) {
      double want = 0;
      for (int p = 0; p < 2; ++p) {
        const int64_t e = p == 0 ? ids[t] : E - 1;
        const double w = p == 0 ? wts[t] : 1.0;
        double acc = 0;
        for (int64_t j = 0; j < I; ++j) {
          double g = 0, u = 0;
          for (int64_t k = 0; k < d; ++k) {
            g += gu[(e * 2 * I + j) * d + k] * x[t * d + k];
            u += gu[(e * 2 * I + I + j) * d + k] * x[t * d + k];
          }
          acc += dn[(e * d + c) * I + j] * (g / (1 + std::exp(-g)) * u);
        }
        want += w * acc;
      }
      num += (got[t * d + c] - want) * (got[t * d + c] - want);
      den += want * want;
    }
  }
  EXPECT_LT(std::sqrt(num / den), 0.1);   // e4m3 activations: a few percent
  EXPECT_GT(std::sqrt(num / den), 1e-4);  // ... but quantized
}

}  // namespace
}  // namespace moeserve

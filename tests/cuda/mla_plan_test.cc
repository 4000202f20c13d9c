// The MLA launch plan (cuda/mla_plan.h): kernel and head tiles, shared memory, and when the KV
// sequence is split.

#include "cuda/mla_plan.h"
#include "gtest/gtest.h"

namespace moeserve {
namespace {

TEST(MlaPlanTest, PicksKernelAndHeadTiles) {
  using kernels::MlaPath;
  EXPECT_EQ(kernels::PlanMla(8, 4, 32, 8, 100, 132).path, MlaPath::kGeneric);
  EXPECT_EQ(kernels::PlanMla(8, 4, 32, 8, 100, 132).workspace_bytes(), 0);
  EXPECT_EQ(kernels::PlanMla(8, 4, 513, 0, 100, 132).path, MlaPath::kUnsupported);
  const auto v2lite = kernels::PlanMla(128, 16, 512, 64, 4096, 132);
  EXPECT_EQ(v2lite.path, MlaPath::kTensorCore);
  EXPECT_EQ(v2lite.heads_per_cta, 16);
  EXPECT_EQ(v2lite.head_tiles, 1);
  const auto v3 = kernels::PlanMla(128, 128, 512, 64, 4096, 132);
  EXPECT_EQ(v3.heads_per_cta, 64);
  EXPECT_EQ(v3.head_tiles, 2);
  EXPECT_EQ(kernels::PlanMla(1, 20, 512, 64, 16, 132).head_groups, 2);
  EXPECT_EQ(kernels::PlanMla(1, 100, 512, 64, 16, 132).head_tiles, 2);  // 64 + 36 heads
  // Shared memory: queries + stages × 32 rows + P tile, rows padded to 584 bf16; fits 227 KB.
  EXPECT_EQ(kernels::MlaTcSmemBytes(4), 2 * (64 * 584 + 3 * 32 * 584 + 64 * 40));
  EXPECT_LE(kernels::MlaTcSmemBytes(4), 227 * 1024);
  EXPECT_LE(2 * (kernels::MlaTcSmemBytes(2) + 1024), 228 * 1024);  // two CTAs per SM
}

TEST(MlaPlanTest, SplitsOnlyWhenTheGridIsShort) {
  // Enough CTAs for the machine: no split, no workspace.
  const auto big = kernels::PlanMla(128, 128, 512, 64, 4096, 132);
  EXPECT_EQ(big.num_splits, 1);
  EXPECT_EQ(big.workspace_bytes(), 0);
  EXPECT_EQ(kernels::PlanMla(64, 128, 512, 64, 4096, 132).num_splits, 1);  // 128 CTAs ≈ one wave
  // One long sequence: split to fill the machine, each split ≥ 4 tiles.
  const auto one = kernels::PlanMla(1, 128, 512, 64, 32768, 132);
  EXPECT_GT(one.num_splits, 32);
  EXPECT_LE(one.num_splits, kernels::kMlaMaxSplits);
  EXPECT_EQ(one.partial_floats, int64_t{one.num_splits} * 128 * 512);
  EXPECT_EQ(one.lse_floats, int64_t{one.num_splits} * 128);
  EXPECT_EQ(one.workspace_bytes(), (one.partial_floats + one.lse_floats) * 4);
  // Short contexts cap the split count: 100 rows are 4 tiles, one split.
  EXPECT_EQ(kernels::PlanMla(1, 128, 512, 64, 100, 132).num_splits, 1);
  EXPECT_EQ(kernels::PlanMla(1, 128, 512, 64, 256, 132).num_splits, 2);
  // V2-Lite batch 64: 64 CTAs on 264 slots -> 4 splits fill one wave.
  EXPECT_EQ(kernels::PlanMla(64, 16, 512, 64, 4096, 132).num_splits, 4);
}

TEST(MlaPlanTest, SplitHeuristicPrefersWholeWaves) {
  EXPECT_EQ(kernels::ChooseMlaSplits(100, 100, 1 << 20), 1);
  EXPECT_EQ(kernels::ChooseMlaSplits(50, 100, 1 << 20), 2);
  EXPECT_EQ(kernels::ChooseMlaSplits(1, 132, 1 << 20), 55);  // fewest within 85% of 64/132
  EXPECT_EQ(kernels::ChooseMlaSplits(0, 132, 4096), 1);
  EXPECT_EQ(kernels::ChooseMlaSplits(1, 132, 0), 1);
  // The workspace bound: a split grid stays within two waves.
  for (int64_t base = 1; base < 300; ++base) {
    const int s = kernels::ChooseMlaSplits(base, 132, 1 << 20);
    EXPECT_GE(s, 1);
    if (s > 1) {
      EXPECT_LE(base * s, 2 * 132) << base;
    }
  }
}

}  // namespace
}  // namespace moeserve

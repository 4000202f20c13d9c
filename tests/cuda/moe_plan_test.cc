// The MoE launch layout: the host tile schedule and workspace (server/backend/cuda/moe_plan.h),
// the grouped GEMM's shared memory and grid (cuda/moe_layout.h), the fp8 weight permutation for
// the MMA (cuda/fp8_weight.cuh) and the router's shared memory (cuda/moe_route.cuh).

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "cuda/fp8_weight.cuh"
#include "cuda/moe_layout.h"
#include "cuda/moe_route.cuh"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cuda/moe_plan.h"

namespace moeserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(MoePlanTest, TileBoundsCoverEveryRouting) {
  // Padding adds < 64 rows to each non-empty expert; at most min(E, pairs) are non-empty.
  EXPECT_EQ(kernels::MoeMaxMTiles(0, 64), 0);
  EXPECT_EQ(kernels::MoeMaxMTiles(6, 64), 1 + 6);          // decode, top-6: six experts of one row
  EXPECT_EQ(kernels::MoeMaxMTiles(256 * 6, 64), 24 + 64);  // batch 256 on V2-Lite
  EXPECT_EQ(kernels::MoeMaxMTiles(128, 2), 2 + 2);
  EXPECT_EQ(kernels::MoeMaxRows(6, 64), 7 * 64);
  EXPECT_EQ(kernels::MoePaddedRows(0), 0);
  EXPECT_EQ(kernels::MoePaddedRows(1), 64);
  EXPECT_EQ(kernels::MoePaddedRows(64), 64);
  EXPECT_EQ(kernels::MoePaddedRows(65), 128);
  // The bound holds for adversarial routings: every split of the pairs over the experts.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t E = 1 + rng() % 300, T = 1 + rng() % 300, K = 1 + rng() % 8;
    std::vector<int32_t> ids(T * K);
    const int64_t hot = 1 + rng() % E;  // route everything to a few experts, or spread
    for (auto& id : ids) id = static_cast<int32_t>(rng() % hot);
    auto s = BuildMoeTileSchedule(ids, T, K, E);
    ASSERT_TRUE(s.ok());
    EXPECT_LE(s->num_m_tiles, kernels::MoeMaxMTiles(T * K, E)) << "E=" << E << " T=" << T << " K=" << K;
    EXPECT_EQ(s->start[E], s->num_m_tiles * kernels::kMoeTileM);
  }
}

TEST(MoePlanTest, ScheduleMatchesTheDevicePermutation) {
  // 3 tokens, top-2, 4 experts: counts {3, 0, 2, 1}, segments padded to 64 rows.
  const std::vector<int32_t> ids = {2, 0, 0, 2, 3, 0};
  auto s = BuildMoeTileSchedule(ids, 3, 2, 4);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->count, ElementsAre(3, 0, 2, 1));
  EXPECT_THAT(s->start, ElementsAre(0, 64, 64, 128, 192));
  EXPECT_THAT(s->tile_expert, ElementsAre(0, 2, 3));
  EXPECT_EQ(s->num_m_tiles, 3);
  // 130 pairs on one expert take three tiles; empty experts none.
  auto big = BuildMoeTileSchedule(std::vector<int32_t>(130, 1), 65, 2, 3);
  ASSERT_TRUE(big.ok());
  EXPECT_THAT(big->tile_expert, ElementsAre(1, 1, 1));
  EXPECT_THAT(big->start, ElementsAre(0, 0, 192, 192));
}

// S shared experts are the last S experts, each with one row per token; routed ids stay below.
TEST(MoePlanTest, ScheduleWithFusedSharedExperts) {
  // 3 tokens, top-2 over 4 routed experts + 2 shared: counts {3, 0, 2, 1, 3, 3}.
  const std::vector<int32_t> ids = {2, 0, 0, 2, 3, 0};
  auto s = BuildMoeTileSchedule(ids, 3, 2, 6, 2);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->count, ElementsAre(3, 0, 2, 1, 3, 3));
  EXPECT_THAT(s->start, ElementsAre(0, 64, 64, 128, 192, 256, 320));
  EXPECT_THAT(s->tile_expert, ElementsAre(0, 2, 3, 4, 5));
  // A routed id may not name a shared expert.
  auto bad = BuildMoeTileSchedule(std::vector<int32_t>{0, 4}, 1, 2, 6, 2);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("topk_ids[0, 1] = 4 is outside [0, 4)"));
  EXPECT_FALSE(BuildMoeTileSchedule(ids, 3, 2, 6, 6).ok());
  // Shared only (K = 0): a shared expert with 130 tokens takes three tiles.
  auto only = BuildMoeTileSchedule({}, 130, 0, 3, 1);
  ASSERT_TRUE(only.ok()) << only.status();
  EXPECT_THAT(only->tile_expert, ElementsAre(2, 2, 2));
  // The workspace bound of T·(K+S) pairs over E + S experts covers every routing.
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t E = 1 + rng() % 300, S = 1 + rng() % 3, T = 1 + rng() % 300, K = rng() % 9;
    std::vector<int32_t> r(T * K);
    const int64_t hot = 1 + rng() % E;
    for (auto& id : r) id = static_cast<int32_t>(rng() % hot);
    auto sch = BuildMoeTileSchedule(r, T, K, E + S, S);
    ASSERT_TRUE(sch.ok()) << sch.status();
    const MoeWorkspaceLayout w = PlanMoeWorkspace(T, K, E + S, 64, 64, S);
    EXPECT_LE(sch->num_m_tiles, w.max_m_tiles) << "E=" << E << " S=" << S << " T=" << T << " K=" << K;
    EXPECT_EQ(sch->start[E + S], sch->num_m_tiles * kernels::kMoeTileM);
    for (int64_t e = E; e < E + S; ++e) EXPECT_EQ(sch->count[e], T);
  }
}

TEST(MoePlanTest, RejectsOutOfRangeIds) {
  auto s = BuildMoeTileSchedule(std::vector<int32_t>{0, 4}, 1, 2, 4);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("topk_ids[0, 1] = 4"));
}

TEST(MoePlanTest, WorkspaceFromTokensTimesTopK) {
  const MoeWorkspaceLayout w = PlanMoeWorkspace(256, 6, 64, 2048, 1408);
  EXPECT_EQ(w.max_m_tiles, 88);
  EXPECT_EQ(w.max_rows, 88 * 64);
  for (int64_t off : {w.row_token, w.pair_row, w.tile_expert, w.num_m_tiles, w.act, w.expert_out}) {
    EXPECT_EQ(off % 256, 0);
  }
  EXPECT_GE(w.pair_row - w.row_token, w.max_rows * 4);
  EXPECT_GE(w.tile_expert - w.pair_row, 256 * 6 * 4);
  EXPECT_GE(w.expert_out - w.act, w.max_rows * 1408 * 2);
  EXPECT_EQ(w.total_bytes, w.expert_out + w.max_rows * 2048 * 2);
  EXPECT_EQ(PlanMoeWorkspace(0, 6, 64, 2048, 1408).max_m_tiles, 0);
  // DeepSeek-V3 decode at batch 1 with the shared expert fused: 8 + 1 pairs over 256 + 1 experts,
  // nine one-row experts, nine tiles (+1 for the ⌈pairs / 64⌉ term of the bound).
  const MoeWorkspaceLayout v3 = PlanMoeWorkspace(1, 8, 257, 7168, 2048, 1);
  EXPECT_EQ(v3.max_m_tiles, 1 + 9);
  EXPECT_GE(v3.tile_expert - v3.pair_row, 9 * 4);
  EXPECT_EQ(PlanMoeWorkspace(256, 6, 66, 2048, 1408, 2).max_m_tiles, (256 * 8 + 63) / 64 + 66);
}

TEST(MoeGemmLayoutTest, SharedMemoryAndGrid) {
  using kernels::MoeWeightFormat;
  // 4 bf16 stages or 3 fp8 stages of (64 × BK activations + 128 × 128 weight bytes): 96 KiB, two
  // CTAs per SM within 228 KiB.
  EXPECT_EQ(kernels::MoeGemmSharedBytes(MoeWeightFormat::kBf16), 4 * (64 * 128 + 128 * 128));
  EXPECT_EQ(kernels::MoeGemmSharedBytes(MoeWeightFormat::kFp8Block128), 3 * (64 * 256 + 128 * 128));
  EXPECT_LE(2 * (kernels::MoeGemmSharedBytes(MoeWeightFormat::kBf16) + 1024), 228 * 1024);
  EXPECT_EQ(kernels::MoeGemmNTiles(1408, /*gate_up_silu=*/true), 22);
  EXPECT_EQ(kernels::MoeGemmNTiles(2048, /*gate_up_silu=*/false), 16);
  EXPECT_EQ(kernels::MoeGemmNTiles(96, /*gate_up_silu=*/true), 2);
}

TEST(Fp8WeightTest, MmaPermutation) {
  // Each 16-byte group: thread q's four bytes are columns {2q, 2q+1, 2q+8, 2q+9}.
  std::vector<uint8_t> row(32);
  for (int i = 0; i < 32; ++i) row[i] = static_cast<uint8_t>(i);
  kernels::PermuteFp8ForMma(row.data(), 32);
  EXPECT_THAT(std::vector<uint8_t>(row.begin(), row.begin() + 16),
              ElementsAre(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15));
  EXPECT_EQ(row[16], 16);
  EXPECT_EQ(row[18], 24);
  std::vector<bool> seen(16);
  for (int c = 0; c < 16; ++c) seen[kernels::Fp8MmaPosition(c)] = true;
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), 16);
  EXPECT_EQ(Fp8ScalesOffset(1), 256);
  EXPECT_EQ(Fp8ScalesOffset(512), 512);
}

TEST(MoeRouteSizingTest, SharedMemoryFitsDeepSeekV3) {
  EXPECT_LE(kernels::MoeRouteSharedBytes(256, 8), 48 * 1024);
  EXPECT_GT(kernels::MoeRouteSharedBytes(256, 8), 256 * 10);
}

}  // namespace
}  // namespace moeserve

// Host-side logic of the CUDA backend, tested without a GPU: attention head-dim dispatch, shape
// validation (on tensors whose memory is never touched), the MoE plan, the caching allocator and
// routing shared-memory sizing.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "cuda/attention_dispatch.h"
#include "cuda/attention_plan.h"
#include "cuda/mla_plan.h"
#include "cuda/fp8_weight.cuh"
#include "cuda/moe_fp8_plan.h"
#include "cuda/moe_layout.h"
#include "cuda/moe_route.cuh"
#include "cuda/sampling.cuh"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cuda/caching_allocator.h"
#include "server/backend/cuda/cuda_checks.h"
#include "server/backend/cuda/graph_buckets.h"
#include "server/backend/cpu/moe_w8a8_reference.h"
#include "server/backend/cuda/moe_plan.h"
#include "server/sampling/philox.h"

namespace moeserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A tensor with a fake, never-dereferenced device address.
Tensor Fake(DType dtype, Shape shape) {
  static char dummy[64];
  return Tensor(nullptr, dummy, dtype, shape);
}

TEST(AttentionDispatchTest, PicksSmallestCapacityThatFits) {
  EXPECT_EQ(kernels::ChooseAttentionCapacity(8, 8), 0);
  EXPECT_EQ(kernels::ChooseAttentionCapacity(64, 64), 0);
  EXPECT_EQ(kernels::ChooseAttentionCapacity(65, 64), 1);
  EXPECT_EQ(kernels::ChooseAttentionCapacity(128, 128), 1);
  EXPECT_EQ(kernels::ChooseAttentionCapacity(192, 128), 2);
  EXPECT_EQ(kernels::ChooseAttentionCapacity(40, 32), 0);    // test-fixture MLA (32 + 8)
  EXPECT_EQ(kernels::ChooseAttentionCapacity(576, 512), 3);  // DeepSeek MLA
}

TEST(AttentionDispatchTest, RejectsUnsupportedDims) {
  EXPECT_EQ(kernels::ChooseAttentionCapacity(577, 512), -1);
  EXPECT_EQ(kernels::ChooseAttentionCapacity(576, 513), -1);
  EXPECT_EQ(kernels::ChooseAttentionCapacity(0, 64), -1);
}

TEST(CudaChecksTest, WeightDTypeKeepsVectorsInF32) {
  EXPECT_EQ(cuda_checks::WeightDType(Shape{7}), DType::kF32);
  EXPECT_EQ(cuda_checks::WeightDType(Shape{7, 3}), DType::kBF16);
  EXPECT_EQ(cuda_checks::WeightDType(Shape{2, 7, 3}), DType::kBF16);
}

TEST(CudaChecksTest, LinearAcceptsBf16OrF32Output) {
  const Tensor x = Fake(DType::kBF16, {3, 8}), w = Fake(DType::kBF16, {5, 8});
  EXPECT_TRUE(cuda_checks::CheckLinear(x, w, Tensor(), Fake(DType::kBF16, {3, 5})).ok());
  EXPECT_TRUE(cuda_checks::CheckLinear(x, w, Fake(DType::kF32, {5}), Fake(DType::kF32, {3, 5})).ok());
  auto s = cuda_checks::CheckLinear(x, w, Tensor(), Fake(DType::kBF16, {3, 4}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("Linear: out has shape [3, 4]"));
  EXPECT_FALSE(cuda_checks::CheckLinear(Fake(DType::kF32, {3, 8}), w, Tensor(), Fake(DType::kBF16, {3, 5})).ok());
}

TEST(CudaChecksTest, RmsNormWantsF32Weight) {
  EXPECT_TRUE(cuda_checks::CheckRmsNorm(Fake(DType::kBF16, {2, 4}), Fake(DType::kF32, {4}),
                                        Fake(DType::kBF16, {2, 4})).ok());
  EXPECT_FALSE(cuda_checks::CheckRmsNorm(Fake(DType::kBF16, {2, 4}), Fake(DType::kBF16, {4}),
                                         Fake(DType::kBF16, {2, 4})).ok());
}

TEST(CudaChecksTest, RopeRejectsOddRotaryDim) {
  auto s = cuda_checks::CheckRope(Fake(DType::kBF16, {2, 4, 16}), Fake(DType::kI32, {2}),
                                  Fake(DType::kF32, {128, 15}), 15);
  EXPECT_THAT(std::string(s.message()), HasSubstr("rotary_dim 15"));
}

AttentionMetadata FakeMeta(int S, int T, int bs) {
  AttentionMetadata m;
  m.num_seqs = S;
  m.num_tokens = T;
  m.block_size = bs;
  m.max_query_len = T;
  m.max_seq_len = 64;
  m.query_start_loc = Fake(DType::kI32, {S + 1});
  m.seq_lens = Fake(DType::kI32, {S});
  m.block_tables = Fake(DType::kI32, {S, 4});
  m.slot_mapping = Fake(DType::kI32, {T});
  return m;
}

TEST(CudaChecksTest, PagedAttentionShapes) {
  const auto meta = FakeMeta(2, 5, 16);
  const Tensor q = Fake(DType::kBF16, {5, 8, 128});
  const Tensor kc = Fake(DType::kBF16, {10, 16, 2, 128}), vc = Fake(DType::kBF16, {10, 16, 2, 128});
  EXPECT_TRUE(cuda_checks::CheckPagedAttention(q, kc, vc, meta, Fake(DType::kBF16, {5, 8, 128})).ok());
  // GQA group must divide.
  EXPECT_FALSE(cuda_checks::CheckPagedAttention(Fake(DType::kBF16, {5, 7, 128}), kc, vc, meta,
                                                Fake(DType::kBF16, {5, 7, 128})).ok());
  // Block size mismatch and oversized blocks.
  EXPECT_FALSE(cuda_checks::CheckPagedAttention(q, kc, vc, FakeMeta(2, 5, 8),
                                                Fake(DType::kBF16, {5, 8, 128})).ok());
  const Tensor kbig = Fake(DType::kBF16, {10, 256, 2, 128});
  auto s = cuda_checks::CheckPagedAttention(q, kbig, kbig, FakeMeta(2, 5, 256), Fake(DType::kBF16, {5, 8, 128}));
  EXPECT_THAT(std::string(s.message()), HasSubstr("block size 256"));
  // Head dim beyond every kernel capacity.
  const Tensor kwide = Fake(DType::kBF16, {10, 16, 2, 640});
  s = cuda_checks::CheckPagedAttention(Fake(DType::kBF16, {5, 8, 640}), kwide, kwide, meta,
                                       Fake(DType::kBF16, {5, 8, 640}));
  EXPECT_THAT(std::string(s.message()), HasSubstr("not supported by the CUDA attention kernel"));
  // num_tokens mismatch.
  EXPECT_FALSE(cuda_checks::CheckPagedAttention(q, kc, vc, FakeMeta(2, 4, 16),
                                                Fake(DType::kBF16, {5, 8, 128})).ok());
}

TEST(CudaChecksTest, MlaShapes) {
  const auto meta = FakeMeta(1, 3, 16);
  const Tensor cache = Fake(DType::kBF16, {4, 16, 576});
  EXPECT_TRUE(cuda_checks::CheckPagedMlaAttention(Fake(DType::kBF16, {3, 16, 512}), Fake(DType::kBF16, {3, 16, 64}),
                                                  cache, meta, Fake(DType::kBF16, {3, 16, 512})).ok());
  EXPECT_TRUE(cuda_checks::CheckWriteMlaCache(Fake(DType::kBF16, {3, 512}), Fake(DType::kBF16, {3, 64}), meta, cache).ok());
  EXPECT_FALSE(cuda_checks::CheckWriteMlaCache(Fake(DType::kBF16, {3, 512}), Fake(DType::kBF16, {3, 32}), meta, cache).ok());
}

TEST(CudaChecksTest, RopeWriteMlaCacheShapes) {
  const auto meta = FakeMeta(1, 3, 16);
  const Tensor cache = Fake(DType::kBF16, {4, 16, 576}), kv = Fake(DType::kBF16, {3, 512});
  const Tensor pe = Fake(DType::kBF16, {3, 64}), pos = Fake(DType::kI32, {3});
  const Tensor cs = Fake(DType::kF32, {4096, 64});
  EXPECT_TRUE(cuda_checks::CheckRopeWriteMlaCache(kv, pe, pos, cs, meta, cache).ok());
  auto s = cuda_checks::CheckRopeWriteMlaCache(kv, pe, pos, Fake(DType::kF32, {4096, 32}), meta, cache);
  EXPECT_THAT(std::string(s.message()), HasSubstr("RopeWriteMlaCache: cos_sin has shape [4096, 32]"));
  s = cuda_checks::CheckRopeWriteMlaCache(kv, Fake(DType::kBF16, {3, 7}), pos, cs, meta, cache);
  EXPECT_THAT(std::string(s.message()), HasSubstr("positive even"));
  s = cuda_checks::CheckRopeWriteMlaCache(kv, pe, Fake(DType::kI32, {2}), cs, meta, cache);
  EXPECT_THAT(std::string(s.message()), HasSubstr("positions has shape [2]"));
  s = cuda_checks::CheckRopeWriteMlaCache(kv, pe, pos, cs, meta, Fake(DType::kBF16, {4, 16, 570}));
  EXPECT_THAT(std::string(s.message()), HasSubstr("cache has shape"));
}

TEST(CudaChecksTest, MlaAttentionShapeLimits) {
  const auto meta = FakeMeta(1, 3, 16);
  auto check = [&](int64_t L, int64_t R) {
    return cuda_checks::CheckPagedMlaAttention(Fake(DType::kBF16, {3, 4, L}), Fake(DType::kBF16, {3, 4, R}),
                                               Fake(DType::kBF16, {4, 16, L + R}), meta,
                                               Fake(DType::kBF16, {3, 4, L}));
  };
  EXPECT_TRUE(check(32, 8).ok());
  EXPECT_TRUE(check(20, 6).ok());
  EXPECT_TRUE(check(512, 64).ok());
  EXPECT_THAT(std::string(check(513, 0).message()), HasSubstr("not supported by the CUDA MLA kernels"));
  EXPECT_FALSE(check(512, 72).ok());
}

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

TEST(CudaChecksTest, MoeRouteParamsAndDtypes) {
  MoeRoutingParams p;
  p.top_k = 8;
  p.method = MoeTopkMethod::kNoAuxTc;
  p.n_group = 8;
  p.topk_group = 4;
  const Tensor ids = Fake(DType::kI32, {3, 8}), w = Fake(DType::kF32, {3, 8});
  EXPECT_TRUE(cuda_checks::CheckMoeRoute(Fake(DType::kF32, {3, 256}), Fake(DType::kF32, {256}), p, ids, w).ok());
  EXPECT_TRUE(cuda_checks::CheckMoeRoute(Fake(DType::kBF16, {3, 256}), Fake(DType::kF32, {256}), p, ids, w).ok());
  EXPECT_FALSE(cuda_checks::CheckMoeRoute(Fake(DType::kF32, {3, 256}), Tensor(), p, ids, w).ok());
  p.n_group = 7;
  EXPECT_THAT(std::string(cuda_checks::CheckMoeRoute(Fake(DType::kF32, {3, 256}), Fake(DType::kF32, {256}), p, ids, w).message()),
              HasSubstr("n_group 7"));
  p.method = MoeTopkMethod::kGreedy;
  EXPECT_FALSE(cuda_checks::CheckMoeRoute(Fake(DType::kF32, {3, 256}), Fake(DType::kF32, {256}), p, ids, w).ok());
}

TEST(CudaChecksTest, MoeExpertsShapes) {
  auto check = [](DType wt, int64_t d, int64_t I, const MoeExpertsExtras& extras = {}) {
    return cuda_checks::CheckMoeExperts(Fake(DType::kBF16, {4, d}), Fake(DType::kI32, {4, 2}),
                                        Fake(DType::kF32, {4, 2}), Fake(wt, {8, 2 * I, d}),
                                        Fake(wt, {8, d, I}), Fake(DType::kBF16, {4, d}), extras);
  };
  EXPECT_TRUE(check(DType::kBF16, 16, 24).ok());
  EXPECT_TRUE(check(DType::kF8E4M3, 256, 128).ok());
  EXPECT_THAT(std::string(check(DType::kF8E4M3, 256, 64).message()), HasSubstr("multiples of 128"));
  EXPECT_THAT(std::string(check(DType::kBF16, 16, 12).message()), HasSubstr("multiples of 8"));
  EXPECT_FALSE(cuda_checks::CheckMoeExperts(Fake(DType::kBF16, {4, 16}), Fake(DType::kI32, {4, 2}),
                                            Fake(DType::kF32, {4, 2}), Fake(DType::kBF16, {8, 23, 16}),
                                            Fake(DType::kBF16, {8, 16, 12}), Fake(DType::kBF16, {4, 16}), {})
                   .ok());
  // Mixed weight dtypes are refused.
  EXPECT_FALSE(cuda_checks::CheckMoeExperts(Fake(DType::kBF16, {4, 256}), Fake(DType::kI32, {4, 2}),
                                            Fake(DType::kF32, {4, 2}), Fake(DType::kF8E4M3, {8, 256, 256}),
                                            Fake(DType::kBF16, {8, 256, 128}), Fake(DType::kBF16, {4, 256}), {})
                   .ok());
  EXPECT_TRUE(check(DType::kBF16, 16, 24, {Fake(DType::kBF16, {4, 16}), Fake(DType::kI64, {8})}).ok());
  EXPECT_THAT(std::string(check(DType::kBF16, 16, 24, {Fake(DType::kBF16, {4, 8}), Tensor()}).message()),
              HasSubstr("shared_out"));
  EXPECT_THAT(std::string(check(DType::kBF16, 16, 24, {Tensor(), Fake(DType::kI32, {8})}).message()),
              HasSubstr("expert_counts"));
  EXPECT_THAT(std::string(cuda_checks::CheckMoeExperts(
                              Fake(DType::kBF16, {4, 16}), Fake(DType::kI32, {4, 2}), Fake(DType::kF32, {4, 2}),
                              Fake(DType::kBF16, {1025, 48, 16}), Fake(DType::kBF16, {1025, 16, 24}),
                              Fake(DType::kBF16, {4, 16}), {})
                              .message()),
              HasSubstr("up to 1024"));
}

// Fused shared experts: the last S of the E stacked experts; expert_counts covers the routed ones.
TEST(CudaChecksTest, MoeExpertsFusedSharedExperts) {
  auto check = [](int64_t S, Tensor counts) {
    MoeExpertsExtras extras;
    extras.num_shared_experts = S;
    extras.expert_counts = counts;
    return cuda_checks::CheckMoeExperts(Fake(DType::kBF16, {4, 16}), Fake(DType::kI32, {4, 2}),
                                        Fake(DType::kF32, {4, 2}), Fake(DType::kBF16, {8, 48, 16}),
                                        Fake(DType::kBF16, {8, 16, 24}), Fake(DType::kBF16, {4, 16}), extras);
  };
  EXPECT_TRUE(check(1, Tensor()).ok());
  EXPECT_TRUE(check(2, Fake(DType::kI64, {6})).ok());
  EXPECT_THAT(std::string(check(2, Fake(DType::kI64, {8})).message()), HasSubstr("expert_counts"));
  EXPECT_THAT(std::string(check(8, Tensor()).message()), HasSubstr("num_shared_experts 8 is outside [0, 8)"));
  EXPECT_FALSE(check(-1, Tensor()).ok());
}

// num_valid_tokens: one i32 on the device.
TEST(CudaChecksTest, MoeExpertsNumValidTokens) {
  auto check = [](Tensor valid) {
    MoeExpertsExtras extras;
    extras.expert_counts = Fake(DType::kI64, {8});
    extras.num_valid_tokens = valid;
    return cuda_checks::CheckMoeExperts(Fake(DType::kBF16, {4, 16}), Fake(DType::kI32, {4, 2}),
                                        Fake(DType::kF32, {4, 2}), Fake(DType::kBF16, {8, 48, 16}),
                                        Fake(DType::kBF16, {8, 16, 24}), Fake(DType::kBF16, {4, 16}), extras);
  };
  EXPECT_TRUE(check(Tensor()).ok());
  EXPECT_TRUE(check(Fake(DType::kI32, {1})).ok());
  EXPECT_THAT(std::string(check(Fake(DType::kI32, {4})).message()), HasSubstr("num_valid_tokens"));
  EXPECT_THAT(std::string(check(Fake(DType::kI64, {1})).message()), HasSubstr("num_valid_tokens"));
}

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

CachingAllocator::RawOps MallocOps(int64_t* live, size_t limit = SIZE_MAX) {
  return {[live, limit](size_t n) -> void* {
            if (n > limit) return nullptr;
            ++*live;
            return std::malloc(n);
          },
          [live](void* p) {
            --*live;
            std::free(p);
          }};
}

TEST(CachingAllocatorTest, RoundsToSizeClasses) {
  EXPECT_EQ(CachingAllocator::RoundSize(0), 512u);
  EXPECT_EQ(CachingAllocator::RoundSize(513), 1024u);
  EXPECT_EQ(CachingAllocator::RoundSize((1 << 20) + 1), size_t{2} << 20);
  EXPECT_EQ(CachingAllocator::RoundSize((5 << 20) + 1), size_t{6} << 20);
}

TEST(CachingAllocatorTest, SteadyStateMakesNoRawAllocations) {
  int64_t live = 0;
  {
    CachingAllocator a(MallocOps(&live));
    for (int step = 0; step < 10; ++step) {
      std::vector<void*> blocks;
      for (size_t n : {100, 4096, 70000, 3 << 20}) blocks.push_back(a.Allocate(n));
      for (void* p : blocks) a.Free(p);
    }
    EXPECT_EQ(a.stats().raw_allocs, 4);
    EXPECT_EQ(a.stats().in_use_bytes, 0u);
    EXPECT_GT(a.stats().cached_bytes, 0u);
  }
  EXPECT_EQ(live, 0);  // the destructor returned every cached block
}

TEST(CachingAllocatorTest, DoesNotHandOutFarLargerBlocks) {
  int64_t live = 0;
  CachingAllocator a(MallocOps(&live));
  a.Free(a.Allocate(64 << 20));
  void* small = a.Allocate(1024);
  EXPECT_EQ(a.stats().raw_allocs, 2);
  a.Free(small);
}

TEST(CachingAllocatorTest, ReleasesCacheAndRetriesWhenOutOfMemory) {
  int64_t live = 0;
  size_t limit = SIZE_MAX;
  CachingAllocator a({[&](size_t n) -> void* {
                        if (live > 0 && limit != SIZE_MAX) return nullptr;  // one block fits
                        ++live;
                        return std::malloc(n);
                      },
                      [&](void* p) {
                        --live;
                        std::free(p);
                      }});
  limit = 1;
  a.Free(a.Allocate(1 << 20));  // cached
  void* p = a.Allocate(8 << 20);  // needs the cached block released first
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(a.stats().raw_frees, 1);
  a.Free(p);
}

TEST(CachingAllocatorTest, MarkMeasuresPeakAndMissesOfAWindow) {
  int64_t live = 0;
  CachingAllocator a(MallocOps(&live));
  void* weights = a.Allocate(8 << 20);  // stays in use
  void* warm = a.Allocate(4 << 20);     // a warm-up step's activation
  a.Free(warm);
  a.Mark();
  EXPECT_EQ(a.stats().peak_in_use_bytes, size_t{8} << 20);
  EXPECT_EQ(a.stats().raw_allocs_since_mark, 0);
  void* again = a.Allocate(4 << 20);  // cached: a hit
  EXPECT_EQ(a.stats().peak_in_use_bytes, size_t{12} << 20);
  EXPECT_EQ(a.stats().raw_allocs_since_mark, 0);
  void* miss = a.Allocate(1 << 10);
  EXPECT_EQ(a.stats().raw_allocs_since_mark, 1);
  a.Free(again);
  a.Free(miss);
  EXPECT_EQ(a.stats().peak_in_use_bytes, (size_t{12} << 20) + 1024);  // the peak stays
  a.Mark();
  EXPECT_EQ(a.stats().peak_in_use_bytes, size_t{8} << 20);
  a.Free(weights);
}

TEST(SamplingKernelTest, PhiloxDrawMatchesTheHostSampler) {
  // cuda/sampling.cuh's Philox (the device code, compiled for the host) vs server/sampling/philox.h.
  for (uint64_t seed : {uint64_t{0}, uint64_t{1}, uint64_t{0xDEADBEEFCAFEF00D}, ~uint64_t{0}}) {
    for (uint64_t step : {uint64_t{0}, uint64_t{1}, uint64_t{4095}, uint64_t{1} << 33}) {
      EXPECT_EQ(kernels::SamplingUniformKernel(static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                                               static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32)),
                SamplingUniform(seed, step))
          << seed << " " << step;
    }
  }
}

TEST(GraphBucketsTest, PowersOfTwoThenEveryEight) {
  EXPECT_THAT(cuda_graphs::DecodeBuckets(32), ElementsAre(1, 2, 4, 8, 16, 24, 32));
  EXPECT_THAT(cuda_graphs::DecodeBuckets(20), ElementsAre(1, 2, 4, 8, 16, 20));
  EXPECT_THAT(cuda_graphs::DecodeBuckets(3), ElementsAre(1, 2, 3));
  EXPECT_EQ(cuda_graphs::DecodeBuckets(256).size(), 3u + 32u);
}

TEST(GraphBucketsTest, ChoosesSmallestFittingBucketElseEager) {
  const std::vector<int32_t> b = cuda_graphs::DecodeBuckets(256);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 1), 1);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 3), 4);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 9), 16);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 256), 256);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 257), -1);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 0), -1);
}

TEST(MoeRouteSizingTest, SharedMemoryFitsDeepSeekV3) {
  EXPECT_LE(kernels::MoeRouteSharedBytes(256, 8), 48 * 1024);
  EXPECT_GT(kernels::MoeRouteSharedBytes(256, 8), 256 * 10);
}

TEST(CudaChecksTest, RopeWriteKvCacheShapes) {
  const Tensor q = Fake(DType::kBF16, {5, 8, 128}), k = Fake(DType::kBF16, {5, 2, 128});
  const Tensor pos = Fake(DType::kI32, {5}), cs = Fake(DType::kF32, {4096, 128});
  const Tensor kc = Fake(DType::kBF16, {10, 16, 2, 128});
  AttentionMetadata meta;
  meta.block_size = 16;
  meta.slot_mapping = Fake(DType::kI32, {5});
  EXPECT_TRUE(cuda_checks::CheckRopeWriteKvCache(q, k, k, pos, cs, 128, meta, kc, kc).ok());
  auto s = cuda_checks::CheckRopeWriteKvCache(Fake(DType::kF32, {5, 8, 128}), k, k, pos, cs, 128, meta, kc, kc);
  EXPECT_THAT(std::string(s.message()), HasSubstr("RopeWriteKvCache: q has dtype f32"));
  s = cuda_checks::CheckRopeWriteKvCache(q, Fake(DType::kBF16, {5, 3, 128}), k, pos, cs, 128, meta, kc, kc);
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a multiple"));
  s = cuda_checks::CheckRopeWriteKvCache(q, k, k, pos, cs, 64, meta, kc, kc);
  EXPECT_THAT(std::string(s.message()), HasSubstr("cos_sin has shape [4096, 128], expected [max_position, 64]"));
  AttentionMetadata bad = meta;
  bad.block_size = 32;
  s = cuda_checks::CheckRopeWriteKvCache(q, k, k, pos, cs, 128, bad, kc, kc);
  EXPECT_THAT(std::string(s.message()), HasSubstr("meta.block_size 32"));
  s = cuda_checks::CheckRopeWriteKvCache(q, k, k, pos, cs, 128, meta, kc, Fake(DType::kBF16, {10, 16, 1, 128}));
  EXPECT_THAT(std::string(s.message()), HasSubstr("v_cache has shape"));
}

kernels::AttentionShape GqaShape(int64_t seqs, int64_t max_q, int64_t max_len) {
  return {.num_seqs = seqs, .num_heads = 32, .num_kv_heads = 8, .head_dim = 128, .v_head_dim = 128,
          .block_size = 16, .max_query_len = max_q, .max_seq_len = max_len, .sm_count = 132};
}

TEST(AttentionPlanTest, FlashOnlyForPowerOfTwoBlocksAndHeadDims64Or128) {
  EXPECT_TRUE(kernels::PlanAttention(GqaShape(1, 1, 100)).use_flash);
  auto s = GqaShape(1, 1, 100);
  s.head_dim = s.v_head_dim = 64;
  EXPECT_TRUE(kernels::PlanAttention(s).use_flash);
  s.head_dim = s.v_head_dim = 16;
  EXPECT_FALSE(kernels::PlanAttention(s).use_flash);  // v1 kernel
  for (int64_t bs : {1, 8, 16, 32, 128}) {
    s = GqaShape(1, 1, 100);
    s.block_size = bs;
    EXPECT_TRUE(kernels::PlanAttention(s).use_flash) << bs;
    EXPECT_EQ(1 << kernels::FlashBlockShift(bs), bs);
  }
  for (int64_t bs : {0, 12, 24, 256}) {
    s = GqaShape(1, 1, 100);
    s.block_size = bs;
    EXPECT_FALSE(kernels::PlanAttention(s).use_flash) << bs;  // v1 kernel (or refused by the checks)
    EXPECT_EQ(kernels::FlashBlockShift(bs), -1);
  }
  s = GqaShape(1, 1, 100);
  s.v_head_dim = 64;
  EXPECT_FALSE(kernels::PlanAttention(s).use_flash);
  s = GqaShape(1, 1, 100);
  s.num_heads = 12;
  s.num_kv_heads = 8;
  EXPECT_FALSE(kernels::PlanAttention(s).use_flash);
}

TEST(AttentionPlanTest, DispatchesDecodeAndPrefillRows) {
  auto decode = kernels::PlanAttention(GqaShape(64, 1, 4096));
  EXPECT_TRUE(decode.run_decode);
  EXPECT_FALSE(decode.run_prefill);
  auto mixed = kernels::PlanAttention(GqaShape(4, 100, 4096));
  EXPECT_TRUE(mixed.run_decode);   // the q = 1 sequences
  EXPECT_TRUE(mixed.run_prefill);  // the others
  EXPECT_EQ(mixed.prefill_row_tiles, (100 * 4 + 63) / 64);
  // Groups wider than one mma M tile: everything goes to the prefill kernel.
  auto s = GqaShape(4, 1, 4096);
  s.num_heads = 64;
  s.num_kv_heads = 2;
  auto wide = kernels::PlanAttention(s);
  EXPECT_FALSE(wide.run_decode);
  EXPECT_TRUE(wide.run_prefill);
  EXPECT_EQ(wide.prefill_row_tiles, 1);
  EXPECT_EQ(wide.workspace_bytes, 0);
}

TEST(AttentionPlanTest, SplitsFillTheGpuAtSmallBatchOnly) {
  // 1 sequence × 8 kv heads at 32k: ~2 CTAs per SM → 33 splits, rounded to 1024-token partitions.
  auto p = kernels::PlanAttention(GqaShape(1, 1, 32768));
  EXPECT_EQ(p.partition_tokens % kernels::kFlashTileTokens, 0);
  EXPECT_EQ(p.decode_splits, 32);
  EXPECT_EQ(p.partition_tokens, 1024);
  EXPECT_GE(p.decode_splits * p.partition_tokens, 32768);
  EXPECT_EQ(p.workspace_bytes, 32 * 32 * 128 * 4 + 32 * 32 * 4);
  // Never a split shorter than a 64-token tile.
  p = kernels::PlanAttention(GqaShape(1, 1, 200));
  EXPECT_EQ(p.decode_splits, 4);
  EXPECT_EQ(p.partition_tokens, 64);
  p = kernels::PlanAttention(GqaShape(1, 1, 64));
  EXPECT_EQ(p.decode_splits, 1);
  EXPECT_EQ(p.workspace_bytes, 0);
  // 256 × 8 = 2048 CTAs already fill 132 SMs: no split, no workspace.
  p = kernels::PlanAttention(GqaShape(256, 1, 4096));
  EXPECT_EQ(p.decode_splits, 1);
  EXPECT_EQ(p.workspace_bytes, 0);
  // 16 × 8 = 128 items: 3 splits.
  EXPECT_EQ(kernels::ChooseDecodeSplits(16, 8, 4096, 132), 3);
  EXPECT_EQ(kernels::ChooseDecodeSplits(1, 1, 1 << 20, 132), kernels::kMaxDecodeSplits);
  EXPECT_EQ(kernels::ChooseDecodeSplits(0, 8, 4096, 132), 1);
}

TEST(AttentionPlanTest, SplitCountMatchesPartitions) {
  for (int64_t len : {1, 15, 16, 17, 63, 64, 65, 1000, 1024, 1025, 4095, 4096, 4097, 32767, 32768}) {
    for (int64_t seqs : {1, 3, 64, 256}) {
      const auto p = kernels::PlanAttention(GqaShape(seqs, 1, len));
      ASSERT_TRUE(p.run_decode);
      EXPECT_GE(p.decode_splits * p.partition_tokens, len) << len << " " << seqs;
      EXPECT_LT((p.decode_splits - 1) * p.partition_tokens, len) << len << " " << seqs;  // no empty split
      EXPECT_EQ(p.workspace_bytes > 0, p.decode_splits > 1);
    }
  }
}

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
  x[7] = 10.0f;                                     // block 0's amax
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
  const std::vector<float> got = MoeExpertsW8A8Reference(
      {.x = x, .ids = ids, .weights = wts, .gate_up = gu, .down = dn, .tokens = T, .hidden = d,
       .intermediate = I, .top_k = 1, .num_experts = E, .num_shared = 1});
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
  EXPECT_LT(std::sqrt(num / den), 0.1);  // e4m3 activations: a few percent
  EXPECT_GT(std::sqrt(num / den), 1e-4);  // ... but quantized
}

}  // namespace
}  // namespace moeserve

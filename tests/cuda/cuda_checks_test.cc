// The CUDA backend's argument checks (server/backend/cuda/cuda_checks.h), run without a GPU on
// tensors whose device memory is never touched: each op refuses shapes and dtypes its kernels
// cannot take, with a message naming the argument.

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cuda/cuda_checks.h"

namespace moeserve {
namespace {

using ::testing::HasSubstr;

// A tensor with a fake, never-dereferenced device address.
Tensor Fake(DType dtype, Shape shape) {
  static char dummy[64];
  return Tensor(nullptr, dummy, dtype, shape);
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
  EXPECT_TRUE(
      cuda_checks::CheckRmsNorm(Fake(DType::kBF16, {2, 4}), Fake(DType::kF32, {4}), Fake(DType::kBF16, {2, 4})).ok());
  EXPECT_FALSE(
      cuda_checks::CheckRmsNorm(Fake(DType::kBF16, {2, 4}), Fake(DType::kBF16, {4}), Fake(DType::kBF16, {2, 4})).ok());
}

TEST(CudaChecksTest, RopeRejectsOddRotaryDim) {
  auto s =
      cuda_checks::CheckRope(Fake(DType::kBF16, {2, 4, 16}), Fake(DType::kI32, {2}), Fake(DType::kF32, {128, 15}), 15);
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
  EXPECT_FALSE(
      cuda_checks::CheckPagedAttention(Fake(DType::kBF16, {5, 7, 128}), kc, vc, meta, Fake(DType::kBF16, {5, 7, 128}))
          .ok());
  // Block size mismatch and oversized blocks.
  EXPECT_FALSE(cuda_checks::CheckPagedAttention(q, kc, vc, FakeMeta(2, 5, 8), Fake(DType::kBF16, {5, 8, 128})).ok());
  const Tensor kbig = Fake(DType::kBF16, {10, 256, 2, 128});
  auto s = cuda_checks::CheckPagedAttention(q, kbig, kbig, FakeMeta(2, 5, 256), Fake(DType::kBF16, {5, 8, 128}));
  EXPECT_THAT(std::string(s.message()), HasSubstr("block size 256"));
  // Head dim beyond every kernel capacity.
  const Tensor kwide = Fake(DType::kBF16, {10, 16, 2, 640});
  s = cuda_checks::CheckPagedAttention(Fake(DType::kBF16, {5, 8, 640}), kwide, kwide, meta,
                                       Fake(DType::kBF16, {5, 8, 640}));
  EXPECT_THAT(std::string(s.message()), HasSubstr("not supported by the CUDA attention kernel"));
  // num_tokens mismatch.
  EXPECT_FALSE(cuda_checks::CheckPagedAttention(q, kc, vc, FakeMeta(2, 4, 16), Fake(DType::kBF16, {5, 8, 128})).ok());
}

TEST(CudaChecksTest, MlaShapes) {
  const auto meta = FakeMeta(1, 3, 16);
  const Tensor cache = Fake(DType::kBF16, {4, 16, 576});
  EXPECT_TRUE(cuda_checks::CheckPagedMlaAttention(Fake(DType::kBF16, {3, 16, 512}), Fake(DType::kBF16, {3, 16, 64}),
                                                  cache, meta, Fake(DType::kBF16, {3, 16, 512}))
                  .ok());
  EXPECT_TRUE(
      cuda_checks::CheckWriteMlaCache(Fake(DType::kBF16, {3, 512}), Fake(DType::kBF16, {3, 64}), meta, cache).ok());
  EXPECT_FALSE(
      cuda_checks::CheckWriteMlaCache(Fake(DType::kBF16, {3, 512}), Fake(DType::kBF16, {3, 32}), meta, cache).ok());
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
                                               Fake(DType::kBF16, {4, 16, L + R}), meta, Fake(DType::kBF16, {3, 4, L}));
  };
  EXPECT_TRUE(check(32, 8).ok());
  EXPECT_TRUE(check(20, 6).ok());
  EXPECT_TRUE(check(512, 64).ok());
  EXPECT_THAT(std::string(check(513, 0).message()), HasSubstr("not supported by the CUDA MLA kernels"));
  EXPECT_FALSE(check(512, 72).ok());
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
  EXPECT_THAT(
      std::string(
          cuda_checks::CheckMoeRoute(Fake(DType::kF32, {3, 256}), Fake(DType::kF32, {256}), p, ids, w).message()),
      HasSubstr("n_group 7"));
  p.method = MoeTopkMethod::kGreedy;
  EXPECT_FALSE(cuda_checks::CheckMoeRoute(Fake(DType::kF32, {3, 256}), Fake(DType::kF32, {256}), p, ids, w).ok());
}

TEST(CudaChecksTest, MoeExpertsShapes) {
  auto check = [](DType wt, int64_t d, int64_t I, const MoeExpertsExtras& extras = {}) {
    return cuda_checks::CheckMoeExperts(Fake(DType::kBF16, {4, d}), Fake(DType::kI32, {4, 2}),
                                        Fake(DType::kF32, {4, 2}), Fake(wt, {8, 2 * I, d}), Fake(wt, {8, d, I}),
                                        Fake(DType::kBF16, {4, d}), extras);
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
  EXPECT_THAT(
      std::string(cuda_checks::CheckMoeExperts(Fake(DType::kBF16, {4, 16}), Fake(DType::kI32, {4, 2}),
                                               Fake(DType::kF32, {4, 2}), Fake(DType::kBF16, {1025, 48, 16}),
                                               Fake(DType::kBF16, {1025, 16, 24}), Fake(DType::kBF16, {4, 16}), {})
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

}  // namespace
}  // namespace moeserve

#include "server/kv/block_pool.h"

#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

BlockHash KeyOf(int i) {
  const int32_t tokens[1] = {i};
  return ComputeBlockHash(nullptr, tokens, "");
}

TEST(BlockPoolTest, NullBlockIsNeverHandedOut) {
  BlockPool pool(4);
  EXPECT_EQ(pool.num_usable_blocks(), 3);
  EXPECT_EQ(pool.num_free_blocks(), 3);
  std::vector<int32_t> blocks;
  pool.Allocate(3, &blocks);
  EXPECT_EQ(blocks, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(pool.num_free_blocks(), 0);
  EXPECT_TRUE(pool.CheckIntegrity().ok());
}

TEST(BlockPoolTest, FreeListIsInOrderOfRelease) {
  BlockPool pool(5);
  std::vector<int32_t> blocks;
  pool.Allocate(4, &blocks);
  for (int32_t b : {3, 1, 4, 2}) pool.Release(b);
  std::vector<int32_t> again;
  pool.Allocate(4, &again);
  EXPECT_EQ(again, (std::vector<int32_t>{3, 1, 4, 2}));
  EXPECT_TRUE(pool.CheckIntegrity().ok());
}

TEST(BlockPoolTest, ReferenceCountsAndCachedBlocksSurviveRelease) {
  BlockPool pool(3);
  std::vector<int32_t> blocks;
  pool.Allocate(1, &blocks);
  const int32_t b = blocks[0];
  ASSERT_TRUE(pool.Cache(b, KeyOf(7)));
  EXPECT_FALSE(pool.Cache(b, KeyOf(8)));  // already keyed
  pool.Acquire(b);
  EXPECT_EQ(pool.ref_count(b), 2);
  pool.Release(b);
  pool.Release(b);
  EXPECT_EQ(pool.ref_count(b), 0);
  EXPECT_EQ(pool.num_cached_free_blocks(), 1);
  EXPECT_EQ(pool.Lookup(KeyOf(7)), b);
  // A prefix hit takes it back out of the free list.
  pool.Acquire(b);
  EXPECT_EQ(pool.num_free_blocks(), 1);
  EXPECT_EQ(pool.num_cached_free_blocks(), 0);
  EXPECT_TRUE(pool.CheckIntegrity().ok());
}

TEST(BlockPoolTest, EvictsCachedBlocksOnlyAfterOlderFreeOnes) {
  BlockPool pool(4);
  std::vector<int32_t> blocks;
  pool.Allocate(2, &blocks);  // 1, 2; block 3 stays free and oldest
  ASSERT_TRUE(pool.Cache(1, KeyOf(1)));
  ASSERT_TRUE(pool.Cache(2, KeyOf(2)));
  pool.Release(2);
  pool.Release(1);
  std::vector<int32_t> next;
  pool.Allocate(1, &next);
  EXPECT_EQ(next, std::vector<int32_t>{3});
  EXPECT_TRUE(pool.Lookup(KeyOf(1)).has_value());
  EXPECT_TRUE(pool.Lookup(KeyOf(2)).has_value());
  pool.Allocate(1, &next);  // the least recently released cached block: 2
  EXPECT_EQ(next.back(), 2);
  EXPECT_FALSE(pool.Lookup(KeyOf(2)).has_value());
  EXPECT_TRUE(pool.Lookup(KeyOf(1)).has_value());
  EXPECT_TRUE(pool.CheckIntegrity().ok());
}

TEST(BlockPoolTest, DuplicateKeyIsNotRegisteredTwice) {
  BlockPool pool(3);
  std::vector<int32_t> blocks;
  pool.Allocate(2, &blocks);
  EXPECT_TRUE(pool.Cache(1, KeyOf(5)));
  EXPECT_FALSE(pool.Cache(2, KeyOf(5)));
  EXPECT_FALSE(pool.is_cached(2));
  EXPECT_EQ(pool.Lookup(KeyOf(5)), 1);
  EXPECT_TRUE(pool.CheckIntegrity().ok());
}

TEST(BlockHashTest, KeyDependsOnParentTokensAndSalt) {
  const int32_t a[2] = {1, 2};
  const int32_t b[2] = {1, 3};
  const BlockHash root = ComputeBlockHash(nullptr, a, "");
  EXPECT_EQ(root, ComputeBlockHash(nullptr, a, ""));
  EXPECT_NE(root, ComputeBlockHash(nullptr, b, ""));
  EXPECT_NE(root, ComputeBlockHash(nullptr, a, "tenant"));
  EXPECT_NE(ComputeBlockHash(&root, a, ""), root);
  const BlockHash other_root = ComputeBlockHash(nullptr, b, "");
  EXPECT_NE(ComputeBlockHash(&root, a, ""), ComputeBlockHash(&other_root, a, ""));
}

TEST(BlockHashTest, ExtendIsIncremental) {
  std::vector<int32_t> tokens(40);
  for (int i = 0; i < 40; ++i) tokens[i] = i * 3;
  std::vector<BlockHash> all;
  ExtendBlockHashes(tokens, 8, "s", 5, &all);
  std::vector<BlockHash> stepwise;
  for (size_t n = 0; n <= 5; ++n) ExtendBlockHashes(tokens, 8, "s", n, &stepwise);
  EXPECT_EQ(all, stepwise);
  const int32_t* first = tokens.data();
  EXPECT_EQ(all[0], ComputeBlockHash(nullptr, absl::MakeConstSpan(first, 8), "s"));
  EXPECT_EQ(all[1], ComputeBlockHash(&all[0], absl::MakeConstSpan(first + 8, 8), "s"));
}

}  // namespace
}  // namespace moeserve

#include "server/kv/kv_cache_manager.h"

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

// A request as the manager sees it, with the state the scheduler would keep.
struct TestSeq {
  TestSeq(RequestId id, std::vector<int32_t> tokens, std::string salt = "")
      : id(id), tokens(std::move(tokens)), salt(std::move(salt)) {}

  RequestId id;
  std::vector<int32_t> tokens;
  std::string salt;
  int32_t num_computed = 0;
  std::vector<BlockHash> hashes;

  KvSequence view() { return KvSequence{id, tokens, num_computed, salt, &hashes}; }
};

std::vector<int32_t> Iota(int n, int start) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

class KvCacheManagerTest : public ::testing::Test {
 protected:
  void Init(int32_t num_blocks, int32_t block_size = 16, bool prefix_caching = true) {
    auto created = KvCacheManager::Create({num_blocks, block_size, prefix_caching});
    ASSERT_TRUE(created.ok()) << created.status();
    kv_ = std::move(*created);
  }

  // Admits `seq` with its prefix hits and computes the whole sequence in one step.
  bool Prefill(TestSeq& seq) {
    const ComputedBlocks hit = kv_->GetComputedBlocks(seq.view());
    const int32_t n = static_cast<int32_t>(seq.tokens.size()) - hit.num_tokens;
    if (!kv_->AllocateSlots(seq.view(), n, hit)) return false;
    seq.num_computed = static_cast<int32_t>(seq.tokens.size());
    Check();
    return true;
  }

  void Check() {
    const absl::Status status = kv_->CheckIntegrity();
    ASSERT_TRUE(status.ok()) << status;
  }

  std::vector<int32_t> Blocks(RequestId id) {
    auto span = kv_->GetBlockIds(id);
    return std::vector<int32_t>(span.begin(), span.end());
  }

  std::unique_ptr<KvCacheManager> kv_;
};

// Parallel sampling: children share the parent's full prompt blocks by reference and each gets
// its own tail, with prefix caching off, so n = 4 costs prompt blocks + 4 tails, not 4 prompts.
TEST_F(KvCacheManagerTest, ForkedChildrenShareFullPromptBlocksWithoutPrefixCaching) {
  Init(40, 16, /*prefix_caching=*/false);
  const std::vector<int32_t> prompt = Iota(40, 0);  // 2 full blocks + 8 tokens
  TestSeq parent{1, prompt};
  ASSERT_TRUE(Prefill(parent));
  EXPECT_EQ(kv_->usage().num_used_blocks, 3);
  const std::vector<int32_t> parent_blocks = Blocks(1);
  for (RequestId id = 2; id <= 4; ++id) {
    TestSeq child{id, prompt};
    const ComputedBlocks fork = kv_->GetForkedBlocks(1, parent.num_computed, 40, child.view());
    ASSERT_EQ(fork.num_tokens, 32);
    ASSERT_TRUE(kv_->AllocateSlots(child.view(), 40 - fork.num_tokens, fork));
    Check();
    const std::vector<int32_t> blocks = Blocks(id);
    ASSERT_EQ(blocks.size(), 3u);
    EXPECT_EQ(blocks[0], parent_blocks[0]);
    EXPECT_EQ(blocks[1], parent_blocks[1]);
    EXPECT_NE(blocks[2], parent_blocks[2]);  // the partial tail is never shared
    EXPECT_EQ(kv_->BlockRefCount(blocks[2]), 1);
  }
  EXPECT_EQ(kv_->usage().num_used_blocks, 2 + 4 * 1);
  EXPECT_EQ(kv_->BlockRefCount(parent_blocks[0]), 4);
  EXPECT_EQ(kv_->usage().prefix_hit_tokens, 0);  // a fork is not a prefix-cache hit
  // The parent leaving (finished or preempted) keeps the shared blocks alive for the children.
  kv_->Free(parent.view());
  Check();
  EXPECT_EQ(kv_->usage().num_used_blocks, 2 + 3);
  EXPECT_EQ(kv_->BlockRefCount(parent_blocks[0]), 3);
  for (RequestId id = 2; id <= 4; ++id) {
    TestSeq child{id, prompt};
    kv_->Free(child.view());
  }
  Check();
  EXPECT_EQ(kv_->usage().num_used_blocks, 0);
}

TEST_F(KvCacheManagerTest, ForkNeverCoversTheLastTokenNorUncomputedOrUnsharedTokens) {
  Init(40, 16, /*prefix_caching=*/false);
  TestSeq parent{1, Iota(48, 0)};
  const ComputedBlocks none = kv_->GetForkedBlocks(1, 0, 48, TestSeq{2, Iota(48, 0)}.view());
  EXPECT_TRUE(none.block_ids.empty());  // the parent holds no blocks yet
  ASSERT_TRUE(Prefill(parent));
  TestSeq child{2, Iota(48, 0)};
  // 48 tokens = 3 full blocks, but the child must compute its last token: 2 blocks.
  EXPECT_EQ(kv_->GetForkedBlocks(1, 48, 48, child.view()).num_tokens, 32);
  // Only what the parent has computed, only the common prefix.
  EXPECT_EQ(kv_->GetForkedBlocks(1, 20, 48, child.view()).num_tokens, 16);
  EXPECT_EQ(kv_->GetForkedBlocks(1, 48, 15, child.view()).num_tokens, 0);
  TestSeq short_child{3, Iota(10, 0)};
  EXPECT_EQ(kv_->GetForkedBlocks(1, 48, 10, short_child.view()).num_tokens, 0);
}

TEST_F(KvCacheManagerTest, RejectsBadConfig) {
  EXPECT_FALSE(KvCacheManager::Create({1, 16, true}).ok());
  EXPECT_FALSE(KvCacheManager::Create({10, 0, true}).ok());
}

TEST_F(KvCacheManagerTest, SizesPoolFromMemoryBudget) {
  EXPECT_EQ(*NumKvBlocksForMemory(1000, 100), 10);
  EXPECT_EQ(*NumKvBlocksForMemory(1099, 100), 10);
  const auto too_small = NumKvBlocksForMemory(150, 100);
  ASSERT_FALSE(too_small.ok());
  EXPECT_NE(too_small.status().message().find("150 bytes"), std::string::npos);
  EXPECT_FALSE(NumKvBlocksForMemory(1000, 0).ok());
}

TEST_F(KvCacheManagerTest, AllocatesBlocksAsTokensGrow) {
  Init(10, 4);
  TestSeq a{1, Iota(5, 100)};
  ASSERT_TRUE(kv_->AllocateSlots(a.view(), 5));
  EXPECT_EQ(Blocks(1).size(), 2u);
  a.num_computed = 5;
  for (int i = 0; i < 3; ++i) {  // decode: tokens 6..8 fit in block 2
    a.tokens.push_back(200 + i);
    ASSERT_TRUE(kv_->AllocateSlots(a.view(), 1));
    ++a.num_computed;
    EXPECT_EQ(Blocks(1).size(), 2u);
  }
  a.tokens.push_back(300);
  ASSERT_TRUE(kv_->AllocateSlots(a.view(), 1));
  EXPECT_EQ(Blocks(1).size(), 3u);
  Check();
  kv_->Free(a.view());
  EXPECT_FALSE(kv_->HoldsBlocks(1));
  EXPECT_EQ(kv_->usage().num_used_blocks, 0);
  Check();
}

TEST_F(KvCacheManagerTest, OutOfBlocksIsAFalseReturnThatChangesNothing) {
  Init(4, 4);  // 3 usable blocks = 12 tokens
  TestSeq a{1, Iota(8, 0)};
  ASSERT_TRUE(kv_->AllocateSlots(a.view(), 8));
  TestSeq b{2, Iota(8, 50)};
  EXPECT_FALSE(kv_->AllocateSlots(b.view(), 8));
  EXPECT_FALSE(kv_->HoldsBlocks(2));
  EXPECT_EQ(kv_->usage().num_free_blocks, 1);
  EXPECT_TRUE(kv_->AllocateSlots(b.view(), 4));
  Check();
}

TEST_F(KvCacheManagerTest, PrefixHitAcrossRequests) {
  Init(20);
  TestSeq a{1, Iota(40, 0)};
  ASSERT_TRUE(Prefill(a));
  const std::vector<int32_t> a_blocks = Blocks(1);
  // While `a` runs its computed full blocks become shareable.
  TestSeq b{2, Iota(40, 0)};
  b.tokens[35] = 999;                            // differs in the third (partial) block only
  ASSERT_TRUE(kv_->AllocateSlots(a.view(), 0));  // caching is lazy: happens on a's next call
  const ComputedBlocks hit = kv_->GetComputedBlocks(b.view());
  EXPECT_EQ(hit.num_tokens, 32);
  EXPECT_EQ(hit.block_ids, (std::vector<int32_t>{a_blocks[0], a_blocks[1]}));
  ASSERT_TRUE(kv_->AllocateSlots(b.view(), 8, hit));
  EXPECT_EQ(Blocks(2)[0], a_blocks[0]);
  EXPECT_NE(Blocks(2)[2], a_blocks[2]);
  EXPECT_EQ(kv_->usage().prefix_hit_tokens, 32);
  EXPECT_EQ(kv_->usage().prefix_query_tokens, 80);
  Check();
}

TEST_F(KvCacheManagerTest, BlocksAreCachedOnlyOnceComputed) {
  Init(20);
  TestSeq a{1, Iota(40, 0)};
  ASSERT_TRUE(kv_->AllocateSlots(a.view(), 40));  // scheduled, not yet computed
  TestSeq b{2, Iota(40, 0)};
  EXPECT_EQ(kv_->GetComputedBlocks(b.view()).num_tokens, 0);
  // An abort before the step finished: nothing it did not compute enters the cache.
  kv_->Free(a.view());
  EXPECT_EQ(kv_->GetComputedBlocks(b.view()).num_tokens, 0);
  EXPECT_EQ(kv_->usage().num_cached_free_blocks, 0);
  Check();
}

TEST_F(KvCacheManagerTest, FinishedRequestLeavesItsBlocksCached) {
  Init(20);
  TestSeq a{1, Iota(40, 0)};
  ASSERT_TRUE(Prefill(a));
  kv_->Free(a.view());
  EXPECT_EQ(kv_->usage().num_cached_free_blocks, 2);
  EXPECT_EQ(kv_->usage().num_used_blocks, 0);
  TestSeq b{2, Iota(33, 0)};
  const ComputedBlocks hit = kv_->GetComputedBlocks(b.view());
  EXPECT_EQ(hit.num_tokens, 32);
  ASSERT_TRUE(kv_->AllocateSlots(b.view(), 1, hit));
  EXPECT_EQ(kv_->usage().num_cached_free_blocks, 0);
  Check();
}

TEST_F(KvCacheManagerTest, NeverReusesACachedBlockForTheLastToken) {
  Init(20);
  TestSeq a{1, Iota(32, 0)};
  ASSERT_TRUE(Prefill(a));
  kv_->Free(a.view());
  TestSeq same{2, Iota(32, 0)};  // exactly two full blocks, both cached
  EXPECT_EQ(kv_->GetComputedBlocks(same.view()).num_tokens, 16);
  TestSeq one_more{3, Iota(33, 0)};
  EXPECT_EQ(kv_->GetComputedBlocks(one_more.view()).num_tokens, 32);
  TestSeq one_block{4, Iota(16, 0)};
  EXPECT_EQ(kv_->GetComputedBlocks(one_block.view()).num_tokens, 0);
}

TEST_F(KvCacheManagerTest, SaltSeparatesTenants) {
  Init(20);
  TestSeq a{1, Iota(40, 0), "tenant-a"};
  ASSERT_TRUE(Prefill(a));
  kv_->Free(a.view());
  TestSeq unsalted{2, Iota(40, 0)};
  EXPECT_EQ(kv_->GetComputedBlocks(unsalted.view()).num_tokens, 0);
  TestSeq other{3, Iota(40, 0), "tenant-b"};
  EXPECT_EQ(kv_->GetComputedBlocks(other.view()).num_tokens, 0);
  TestSeq same{4, Iota(40, 0), "tenant-a"};
  EXPECT_EQ(kv_->GetComputedBlocks(same.view()).num_tokens, 32);
  // And the unsalted cache is its own namespace.
  ASSERT_TRUE(Prefill(unsalted));
  kv_->Free(unsalted.view());
  TestSeq unsalted2{5, Iota(40, 0)};
  EXPECT_EQ(kv_->GetComputedBlocks(unsalted2.view()).num_tokens, 32);
  Check();
}

TEST_F(KvCacheManagerTest, SharedPrefixReferenceCounts) {
  Init(20);
  TestSeq a{1, Iota(40, 0)};
  ASSERT_TRUE(Prefill(a));
  ASSERT_TRUE(kv_->AllocateSlots(a.view(), 0));  // registers a's computed blocks
  TestSeq b{2, Iota(20, 0)};
  TestSeq c{3, Iota(36, 0)};
  ASSERT_TRUE(Prefill(b));
  ASSERT_TRUE(Prefill(c));
  const int32_t first = Blocks(1)[0];
  const int32_t second = Blocks(1)[1];
  EXPECT_EQ(Blocks(2)[0], first);
  EXPECT_EQ(Blocks(3)[0], first);
  EXPECT_EQ(Blocks(3)[1], second);
  EXPECT_EQ(kv_->usage().num_used_blocks, 3 + 1 + 1);  // a: 3, b: +1 tail, c: +1 tail
  kv_->Free(a.view());
  Check();
  EXPECT_EQ(kv_->usage().num_used_blocks, 4);  // first, second (held by c), c's and b's tails
  kv_->Free(c.view());
  kv_->Free(b.view());
  Check();
  EXPECT_EQ(kv_->usage().num_used_blocks, 0);
}

TEST_F(KvCacheManagerTest, TailBlocksAreEvictedFirst) {
  Init(5, 4);  // 4 usable blocks of 4 tokens
  TestSeq a{1, Iota(16, 0)};
  ASSERT_TRUE(Prefill(a));
  kv_->Free(a.view());  // all four blocks cached, released tail first
  EXPECT_EQ(kv_->usage().num_cached_free_blocks, 4);
  TestSeq other{2, Iota(8, 500)};  // needs two fresh blocks: evicts a's two tail blocks
  ASSERT_TRUE(Prefill(other));
  TestSeq again{3, Iota(16, 0)};
  EXPECT_EQ(kv_->GetComputedBlocks(again.view()).num_tokens, 8);
  Check();
}

TEST_F(KvCacheManagerTest, EvictsLeastRecentlyReleasedFirst) {
  Init(5, 4);
  TestSeq a{1, Iota(5, 0)};  // one full block + a partial one
  TestSeq b{2, Iota(5, 100)};
  ASSERT_TRUE(Prefill(a));
  ASSERT_TRUE(Prefill(b));
  kv_->Free(a.view());
  kv_->Free(b.view());
  TestSeq c{3, Iota(5, 200)};  // takes a's two blocks
  ASSERT_TRUE(Prefill(c));
  TestSeq a2{4, Iota(5, 0)};
  TestSeq b2{5, Iota(5, 100)};
  EXPECT_EQ(kv_->GetComputedBlocks(a2.view()).num_tokens, 0);
  EXPECT_EQ(kv_->GetComputedBlocks(b2.view()).num_tokens, 4);
  Check();
}

TEST_F(KvCacheManagerTest, PrefixHitsInTheFreeListCountAgainstFreeSpace) {
  Init(4, 4);  // 3 usable blocks
  TestSeq a{1, Iota(9, 0)};
  ASSERT_TRUE(Prefill(a));
  kv_->Free(a.view());        // two cached blocks + one free
  TestSeq b{2, Iota(13, 0)};  // hits 2 blocks, needs 2 more: 4 > 3
  const ComputedBlocks hit = kv_->GetComputedBlocks(b.view());
  ASSERT_EQ(hit.num_tokens, 8);
  EXPECT_FALSE(kv_->AllocateSlots(b.view(), 5, hit));
  Check();
  EXPECT_EQ(kv_->usage().num_cached_free_blocks, 2);
  TestSeq c{3, Iota(12, 0)};  // hits 2, needs 1 more: fits exactly
  const ComputedBlocks hit_c = kv_->GetComputedBlocks(c.view());
  EXPECT_TRUE(kv_->AllocateSlots(c.view(), 4, hit_c));
  EXPECT_EQ(kv_->usage().num_free_blocks, 0);
  Check();
}

TEST_F(KvCacheManagerTest, PrefixCachingCanBeDisabled) {
  Init(20, 16, /*prefix_caching=*/false);
  TestSeq a{1, Iota(40, 0)};
  ASSERT_TRUE(Prefill(a));
  kv_->Free(a.view());
  TestSeq b{2, Iota(40, 0)};
  EXPECT_EQ(kv_->GetComputedBlocks(b.view()).num_tokens, 0);
  EXPECT_EQ(kv_->usage().num_cached_free_blocks, 0);
  Check();
}

TEST_F(KvCacheManagerTest, OutputTokensAreCachedToo) {
  Init(20, 4);
  TestSeq a{1, Iota(6, 0)};
  ASSERT_TRUE(Prefill(a));
  for (int i = 0; i < 4; ++i) {
    a.tokens.push_back(70 + i);
    ASSERT_TRUE(kv_->AllocateSlots(a.view(), 1));
    ++a.num_computed;
  }
  kv_->Free(a.view());  // 10 computed tokens: two full blocks
  TestSeq resumed{1, a.tokens};
  resumed.tokens.push_back(99);
  EXPECT_EQ(kv_->GetComputedBlocks(resumed.view()).num_tokens, 8);
  Check();
}

}  // namespace
}  // namespace moeserve

namespace moeserve {
namespace {

TEST_F(KvCacheManagerTest, TrimSlotsReleasesTailBlocksOfRejectedDrafts) {
  Init(12, 4);
  TestSeq seq(1, Iota(6, 1));
  ASSERT_TRUE(Prefill(seq));  // 6 tokens computed: 2 blocks
  // A step with 5 drafts and 2 lookahead slots: 6 + 1 + 5 + 2 = 14 slots, 4 blocks.
  seq.tokens.push_back(40);
  ASSERT_TRUE(kv_->AllocateSlots(seq.view(), 1 + 5 + 2));
  const std::vector<int32_t> before = Blocks(1);
  ASSERT_EQ(before.size(), 4u);
  // One draft accepted: positions 6 and 7 computed, 9 tokens now (7 + draft + sampled).
  seq.tokens.push_back(41);
  seq.tokens.push_back(42);
  seq.num_computed = 8;
  EXPECT_EQ(kv_->TrimSlots(seq.view(), 9), 1);  // 9 tokens need 3 blocks
  EXPECT_EQ(Blocks(1), std::vector<int32_t>(before.begin(), before.begin() + 3));
  EXPECT_EQ(kv_->BlockRefCount(before[3]), 0);
  EXPECT_EQ(kv_->usage().num_used_blocks, 3);
  Check();
  EXPECT_EQ(kv_->TrimSlots(seq.view(), 9), 0);  // nothing more to release
  EXPECT_EQ(kv_->TrimSlots({.id = 7}, 0), 0);   // a request holding nothing
  // The computed full blocks still enter the cache when the request ends.
  kv_->Free(seq.view());
  TestSeq next(2, Iota(8, 1));
  next.tokens[6] = 40;
  next.tokens[7] = 41;
  next.tokens.push_back(5);
  EXPECT_EQ(kv_->GetComputedBlocks(next.view()).num_tokens, 8);
  Check();
}

}  // namespace
}  // namespace moeserve

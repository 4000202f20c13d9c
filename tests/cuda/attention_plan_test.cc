// How the paged-attention launcher picks its kernels (cuda/attention_dispatch.h,
// cuda/attention_plan.h): the head-dim capacity, flash vs v1, decode vs prefill rows, and the
// split-KV partitions and workspace.

#include "cuda/attention_plan.h"
#include "cuda/attention_dispatch.h"
#include "gtest/gtest.h"

namespace moeserve {
namespace {

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

kernels::AttentionShape GqaShape(int64_t seqs, int64_t max_q, int64_t max_len) {
  return {.num_seqs = seqs,
          .num_heads = 32,
          .num_kv_heads = 8,
          .head_dim = 128,
          .v_head_dim = 128,
          .block_size = 16,
          .max_query_len = max_q,
          .max_seq_len = max_len,
          .sm_count = 132};
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

}  // namespace
}  // namespace moeserve

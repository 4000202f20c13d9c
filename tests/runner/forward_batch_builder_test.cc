// ForwardBatchBuilder builds, step after step, the same batch as the reference below (rows padded
// wider), while writing only the block ids appended since the last step when the batch keeps its
// requests in the same order.

#include "server/runner/forward_batch_builder.h"

#include <algorithm>
#include <random>

#include "gtest/gtest.h"
#include "server/kv/kv_cache_manager.h"
#include "server/scheduler/scheduler.h"

namespace moeserve {
namespace {

// The reference: a fresh batch with each entry laid out in order by ForwardBatch::AddSequence.
ForwardBatch BuildForwardBatch(const SchedulerOutput& step, int32_t block_size) {
  ForwardBatch batch;
  batch.block_size = block_size;
  for (const ScheduledRequest& entry : step.scheduled) {
    batch.max_blocks_per_seq = std::max(batch.max_blocks_per_seq, static_cast<int32_t>(entry.block_ids.size()));
  }
  for (const ScheduledRequest& entry : step.scheduled) {
    batch.AddSequence(entry.token_ids, entry.start_position, entry.block_ids, entry.samples);
  }
  return batch;
}

// Equal to the reference batch, with each row of `got` padded by null blocks.
void ExpectSameBatch(const ForwardBatch& got, const ForwardBatch& want) {
  EXPECT_EQ(got.block_size, want.block_size);
  EXPECT_EQ(got.token_ids, want.token_ids);
  EXPECT_EQ(got.positions, want.positions);
  EXPECT_EQ(got.query_start_loc.size() > 1 ? got.query_start_loc : std::vector<int32_t>{},
            want.query_start_loc.size() > 1 ? want.query_start_loc : std::vector<int32_t>{});
  EXPECT_EQ(got.seq_lens, want.seq_lens);
  EXPECT_EQ(got.slot_mapping, want.slot_mapping);
  EXPECT_EQ(got.logits_indices, want.logits_indices);
  ASSERT_GE(got.max_blocks_per_seq, want.max_blocks_per_seq);
  ASSERT_EQ(got.block_tables.size(), got.seq_lens.size() * got.max_blocks_per_seq);
  for (int32_t s = 0; s < want.num_seqs(); ++s) {
    for (int32_t b = 0; b < got.max_blocks_per_seq; ++b) {
      const int32_t expected =
          b < want.max_blocks_per_seq ? want.block_tables[size_t(s) * want.max_blocks_per_seq + b] : 0;
      ASSERT_EQ(got.block_tables[size_t(s) * got.max_blocks_per_seq + b], expected) << "row " << s << " block " << b;
    }
  }
}

TEST(ForwardBatchBuilderTest, LogitsRowsOnlyForSamplingEntries) {
  const std::vector<int32_t> t1 = {7, 8, 9}, b1 = {1};
  const std::vector<int32_t> t2 = {4}, b2 = {2, 3};
  SchedulerOutput step;
  step.scheduled.push_back(
      {.id = 1, .start_position = 0, .num_new_tokens = 3, .token_ids = t1, .block_ids = b1, .samples = false});
  step.scheduled.push_back(
      {.id = 2, .start_position = 5, .num_new_tokens = 1, .token_ids = t2, .block_ids = b2, .samples = true});
  step.total_num_scheduled_tokens = 4;
  ForwardBatchBuilder builder(KvLayout{.block_size = 4});
  const ForwardBatch& batch = builder.Build(step);
  EXPECT_EQ(batch.block_size, 4);
  EXPECT_EQ(batch.token_ids, (std::vector<int32_t>{7, 8, 9, 4}));
  EXPECT_EQ(batch.positions, (std::vector<int32_t>{0, 1, 2, 5}));
  EXPECT_EQ(batch.logits_indices, std::vector<int32_t>{3});
  EXPECT_EQ(batch.seq_lens, (std::vector<int32_t>{3, 6}));
}

TEST(ForwardBatchBuilderTest, VerifyRowsAndTrimmedTablesAreRewritten) {
  // A decode with 2 drafts: logits rows for the last token and each draft.
  const std::vector<int32_t> t1 = {5, 6, 7}, b1 = {1, 2, 3, 4};
  SchedulerOutput step;
  step.scheduled.push_back({.id = 1,
                            .start_position = 9,
                            .num_new_tokens = 3,
                            .token_ids = t1,
                            .block_ids = b1,
                            .samples = true,
                            .num_draft_tokens = 2});
  step.total_num_scheduled_tokens = 3;
  ForwardBatchBuilder builder(KvLayout{.block_size = 4});
  EXPECT_EQ(builder.Build(step).logits_indices, (std::vector<int32_t>{0, 1, 2}));
  // Its table lost blocks 3 and 4 (rejected drafts), then regrew with block 4 last again: the
  // ends match, the middle does not. Listed as trimmed, the row is rewritten.
  const std::vector<int32_t> t2 = {8}, b2 = {1, 2, 6, 4};
  SchedulerOutput next;
  next.scheduled.push_back(
      {.id = 1, .start_position = 10, .num_new_tokens = 1, .token_ids = t2, .block_ids = b2, .samples = true});
  next.total_num_scheduled_tokens = 1;
  next.trimmed_request_ids = {1};
  const ForwardBatch& batch = builder.Build(next);
  EXPECT_EQ(std::vector<int32_t>(batch.block_tables.begin(), batch.block_tables.begin() + 4), b2);
  EXPECT_EQ(batch.logits_indices, std::vector<int32_t>{0});
}

TEST(ForwardBatchBuilderTest, MatchesTheReferenceUnderArrivalsFinishesAndPreemption) {
  constexpr int32_t kBlock = 4;
  auto kv = KvCacheManager::Create({.num_blocks = 60, .block_size = kBlock});
  ASSERT_TRUE(kv.ok());
  auto scheduler =
      Scheduler::Create({.max_num_batched_tokens = 32, .max_num_seqs = 8, .max_model_len = 160}, kv->get());
  ASSERT_TRUE(scheduler.ok());
  std::mt19937 rng(5);
  ForwardBatchBuilder builder(KvLayout{.block_size = kBlock});
  RequestId next_id = 1;
  int preemptions = 0;
  for (int step = 0; step < 3000; ++step) {
    if (rng() % 4 == 0) {
      std::vector<int32_t> prompt(1 + rng() % 40);
      for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % 50);
      ASSERT_TRUE((*scheduler)
                      ->AddRequest({.id = next_id++,
                                    .prompt_token_ids = prompt,
                                    .max_tokens = 1 + static_cast<int32_t>(rng() % 100),
                                    .ignore_eos = true})
                      .ok());
    }
    const SchedulerOutput out = (*scheduler)->Schedule();
    preemptions += static_cast<int>(out.preempted_request_ids.size());
    const ForwardBatch& got = builder.Build(out);
    ExpectSameBatch(got, BuildForwardBatch(out, kBlock));
    if (::testing::Test::HasFatalFailure()) return;
    ASSERT_TRUE(got.Validate(60, 1 << 20).ok());
    (*scheduler)->UpdateFromOutput(std::vector<int32_t>(out.scheduled.size(), 3));
  }
  EXPECT_GT(preemptions, 0);
}

TEST(ForwardBatchBuilderTest, SteadyDecodeWritesOnlyAppendedBlocks) {
  constexpr int32_t kBlock = 4;
  auto kv = KvCacheManager::Create({.num_blocks = 200, .block_size = kBlock});
  ASSERT_TRUE(kv.ok());
  auto scheduler =
      Scheduler::Create({.max_num_batched_tokens = 512, .max_num_seqs = 8, .max_model_len = 100}, kv->get());
  ASSERT_TRUE(scheduler.ok());
  for (RequestId id = 1; id <= 8; ++id) {
    ASSERT_TRUE(
        (*scheduler)
            ->AddRequest(
                {.id = id, .prompt_token_ids = std::vector<int32_t>(40, 7), .max_tokens = 50, .ignore_eos = true})
            .ok());
  }
  ForwardBatchBuilder builder(KvLayout{.block_size = kBlock});
  int64_t written = 0;
  for (int step = 0; step < 40; ++step) {
    const SchedulerOutput out = (*scheduler)->Schedule();
    builder.Build(out);
    if (step > 0) written += builder.last_block_ids_written();
    (*scheduler)->UpdateFromOutput(std::vector<int32_t>(out.scheduled.size(), 3));
  }
  // All 8 prefill in step 0; 39 decode steps (positions 40..78) add blocks 10..19: 10 new ids
  // per sequence, never the whole table again (that would be 8 x 10+ ids a step).
  EXPECT_EQ(written, 8 * 10);
  EXPECT_GT(written, 0);
}

}  // namespace
}  // namespace moeserve

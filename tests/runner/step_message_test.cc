// Step messages (server/runner/step_message.h): a follower that decodes rank 0's messages lays out
// exactly rank 0's batches, step after step, through arrivals, finishes and preemptions, and with
// speculative drafts (their verify rows); steady decode sends only the appended block ids;
// malformed or out-of-order messages are refused.

#include "server/runner/step_message.h"

#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/kv/kv_cache_manager.h"
#include "server/runner/forward_batch_builder.h"

namespace moeserve {
namespace {

using ::testing::HasSubstr;

void ExpectSameBatch(const ForwardBatch& got, const ForwardBatch& want) {
  EXPECT_EQ(got.block_size, want.block_size);
  EXPECT_EQ(got.token_ids, want.token_ids);
  EXPECT_EQ(got.positions, want.positions);
  EXPECT_EQ(got.query_start_loc, want.query_start_loc);
  EXPECT_EQ(got.seq_lens, want.seq_lens);
  EXPECT_EQ(got.max_blocks_per_seq, want.max_blocks_per_seq);
  EXPECT_EQ(got.block_tables, want.block_tables);
  EXPECT_EQ(got.slot_mapping, want.slot_mapping);
  EXPECT_EQ(got.logits_indices, want.logits_indices);
}

TEST(StepMessageTest, FollowerBuildsTheLeadersBatchesUnderArrivalsFinishesAndPreemption) {
  constexpr int32_t kBlock = 4;
  auto kv = KvCacheManager::Create({.num_blocks = 60, .block_size = kBlock});
  ASSERT_TRUE(kv.ok());
  auto scheduler =
      Scheduler::Create({.max_num_batched_tokens = 32, .max_num_seqs = 8, .max_model_len = 160}, kv->get());
  ASSERT_TRUE(scheduler.ok());
  std::mt19937 rng(11);
  ForwardBatchBuilder leader(KvLayout{.block_size = kBlock}), follower(KvLayout{.block_size = kBlock});
  StepEncoder encoder;
  StepDecoder decoder;
  std::vector<uint8_t> bytes;
  DecodedStep message;
  RequestId next_id = 1;
  int preemptions = 0;
  for (int step = 0; step < 2000; ++step) {
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
    if (step % 97 == 0) {  // idle heartbeats in between change nothing
      encoder.EncodeControl(StepKind::kHeartbeat, &bytes);
      ASSERT_TRUE(decoder.Decode(bytes, &message).ok());
      EXPECT_EQ(message.kind, StepKind::kHeartbeat);
    }
    const SchedulerOutput out = (*scheduler)->Schedule();
    preemptions += static_cast<int>(out.preempted_request_ids.size());
    const std::vector<int32_t> extra =
        out.scheduled.empty() || step % 5 != 0 ? std::vector<int32_t>{} : std::vector<int32_t>{0};
    encoder.EncodeStep(out, extra, &bytes);
    ASSERT_TRUE(decoder.Decode(bytes, &message).ok()) << "step " << step;
    ASSERT_EQ(message.kind, StepKind::kStep);
    EXPECT_EQ(message.step.total_num_scheduled_tokens, out.total_num_scheduled_tokens);
    ExpectSameBatch(follower.Build(message.step, message.extra_logits_rows), leader.Build(out, extra));
    if (::testing::Test::HasFailure()) return;
    (*scheduler)->UpdateFromOutput(std::vector<int32_t>(out.scheduled.size(), 3));
  }
  EXPECT_GT(preemptions, 0);
  encoder.EncodeControl(StepKind::kShutdown, &bytes);
  ASSERT_TRUE(decoder.Decode(bytes, &message).ok());
  EXPECT_EQ(message.kind, StepKind::kShutdown);
}

TEST(StepMessageTest, DraftsTravelWithTheBatch) {
  // Rank 0 decides drafts (here at random) and the follower lays out the same verify rows, through
  // mixed accept lengths, rejected drafts' trimmed blocks, finishes and preemption.
  constexpr int32_t kBlock = 4;
  auto kv = KvCacheManager::Create({.num_blocks = 40, .block_size = kBlock});
  ASSERT_TRUE(kv.ok());
  auto scheduler = Scheduler::Create(
      {.max_num_batched_tokens = 32, .max_num_seqs = 8, .max_model_len = 120, .num_lookahead_tokens = 2}, kv->get());
  ASSERT_TRUE(scheduler.ok());
  std::mt19937 rng(5);
  ForwardBatchBuilder leader(KvLayout{.block_size = kBlock}), follower(KvLayout{.block_size = kBlock});
  StepEncoder encoder;
  StepDecoder decoder;
  std::vector<uint8_t> bytes;
  DecodedStep message;
  RequestId next_id = 1;
  int64_t drafts_sent = 0;
  int preemptions = 0;
  for (int step = 0; step < 1500; ++step) {
    if (rng() % 3 == 0) {
      std::vector<int32_t> prompt(1 + rng() % 30);
      for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % 50);
      ASSERT_TRUE((*scheduler)
                      ->AddRequest({.id = next_id++,
                                    .prompt_token_ids = prompt,
                                    .max_tokens = 1 + static_cast<int32_t>(rng() % 80),
                                    .ignore_eos = true})
                      .ok());
    }
    for (RequestId id = 1; id < next_id; ++id) {  // 0 for requests not decoding: nothing set
      std::vector<int32_t> drafts(rng() % 5);
      for (int32_t& t : drafts) t = static_cast<int32_t>(rng() % 50);
      (*scheduler)->SetDraftTokens(id, drafts);
    }
    const SchedulerOutput out = (*scheduler)->Schedule();
    encoder.EncodeStep(out, {}, &bytes);
    preemptions += static_cast<int>(out.preempted_request_ids.size());
    ASSERT_TRUE(decoder.Decode(bytes, &message).ok()) << "step " << step;
    ASSERT_EQ(message.step.scheduled.size(), out.scheduled.size());
    std::vector<int32_t> accepted(out.scheduled.size(), 0);
    for (size_t i = 0; i < out.scheduled.size(); ++i) {
      EXPECT_EQ(message.step.scheduled[i].num_draft_tokens, out.scheduled[i].num_draft_tokens);
      drafts_sent += out.scheduled[i].num_draft_tokens;
      accepted[i] = static_cast<int32_t>(rng() % (out.scheduled[i].num_draft_tokens + 1));
    }
    ExpectSameBatch(follower.Build(message.step, message.extra_logits_rows), leader.Build(out, {}));
    if (::testing::Test::HasFailure()) return;
    (*scheduler)->UpdateFromOutput(std::vector<int32_t>(out.scheduled.size(), 3), accepted);
  }
  EXPECT_GT(drafts_sent, 1000);
  EXPECT_GT(preemptions, 0);
}

TEST(StepMessageTest, SteadyDecodeSendsOnlyAppendedBlockIds) {
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
  StepEncoder encoder;
  std::vector<uint8_t> bytes;
  int64_t sent = 0;
  size_t largest_decode_message = 0;
  for (int step = 0; step < 40; ++step) {
    const SchedulerOutput out = (*scheduler)->Schedule();
    encoder.EncodeStep(out, {}, &bytes);
    if (step > 0) {
      sent += encoder.last_block_ids_sent();
      largest_decode_message = std::max(largest_decode_message, bytes.size());
    }
    (*scheduler)->UpdateFromOutput(std::vector<int32_t>(out.scheduled.size(), 3));
  }
  EXPECT_EQ(sent, 8 * 10);  // blocks 10..19 of each request, each once
  // Header (21 bytes) + 8 x (25-byte entry + one token + at most one new block id).
  EXPECT_LE(largest_decode_message, 21u + 8 * (25 + 4 + 4));
}

TEST(StepMessageTest, RefusesMalformedAndOutOfOrderMessages) {
  StepEncoder encoder;
  StepDecoder decoder;
  std::vector<uint8_t> bytes;
  DecodedStep message;
  const std::vector<int32_t> tokens = {5, 6}, blocks = {3};
  SchedulerOutput step;
  step.scheduled.push_back(
      {.id = 9, .start_position = 0, .num_new_tokens = 2, .token_ids = tokens, .block_ids = blocks, .samples = true});
  encoder.EncodeStep(step, {}, &bytes);
  std::vector<uint8_t> truncated(bytes.begin(), bytes.end() - 3);
  EXPECT_THAT(std::string(decoder.Decode(truncated, &message).message()), HasSubstr("truncated"));
  StepDecoder fresh;
  std::vector<uint8_t> corrupt = bytes;
  corrupt[0] ^= 0xff;
  EXPECT_TRUE(absl::IsDataLoss(fresh.Decode(corrupt, &message)));
  StepDecoder in_order;
  ASSERT_TRUE(in_order.Decode(bytes, &message).ok());
  EXPECT_THAT(std::string(in_order.Decode(bytes, &message).message()), HasSubstr("expected #1"));
  // Drafts only where the entry samples, and fewer than its new tokens.
  for (const bool samples : {false, true}) {
    SchedulerOutput bad = step;
    bad.scheduled[0].samples = samples;
    bad.scheduled[0].num_draft_tokens = samples ? 2 : 1;
    StepEncoder e;
    StepDecoder d;
    e.EncodeStep(bad, {}, &bytes);
    EXPECT_THAT(std::string(d.Decode(bytes, &message).message()), HasSubstr("drafts in 2 new tokens"));
  }
  // The second step keeps the one block the follower holds and appends one.
  StepEncoder e2;
  StepDecoder d2;
  e2.EncodeStep(step, {}, &bytes);
  std::vector<uint8_t> first = bytes;
  const std::vector<int32_t> more = {3, 4};
  step.scheduled[0].block_ids = more;
  step.scheduled[0].start_position = 2;
  step.scheduled[0].num_new_tokens = 1;
  e2.EncodeStep(step, {}, &bytes);  // keeps 1 block
  StepDecoder skipped;
  ASSERT_TRUE(skipped.Decode(first, &message).ok());
  ASSERT_TRUE(skipped.Decode(bytes, &message).ok());
  EXPECT_EQ(
      std::vector<int32_t>(message.step.scheduled[0].block_ids.begin(), message.step.scheduled[0].block_ids.end()),
      more);
}

}  // namespace
}  // namespace moeserve

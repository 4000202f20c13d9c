// Scheduler side of speculative decoding: draft slots, acceptance, rollback of rejected drafts,
// limits, and the prefix cache never holding unverified tokens.

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduler/scheduler.h"
#include "tests/scheduler/fake_model.h"

namespace moeserve {
namespace {

using ::moeserve::testing::Harness;
using ::moeserve::testing::ReferenceOutput;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

SchedulerConfig Config(int32_t budget = 64, int32_t max_seqs = 8, int32_t max_model_len = 64, int32_t lookahead = 0) {
  SchedulerConfig config;
  config.max_num_batched_tokens = budget;
  config.max_num_seqs = max_seqs;
  config.max_model_len = max_model_len;
  config.num_lookahead_tokens = lookahead;
  return config;
}

RequestSpec Spec(RequestId id, std::vector<int32_t> prompt, int32_t max_tokens) {
  RequestSpec spec;
  spec.id = id;
  spec.prompt_token_ids = std::move(prompt);
  spec.max_tokens = max_tokens;
  return spec;
}

// Runs until request 1 decodes (its prompt computed, one token sampled).
void PrefillOne(Harness& h, const RequestSpec& spec) {
  ASSERT_TRUE(h.Add(spec).ok());
  while (h.scheduler().GetRequest(spec.id)->num_output_tokens() == 0) h.Step();
}

TEST(SpeculativeSchedulerTest, DraftsAreSetOnlyOnDecodingRequestsAndCappedByTheLimits) {
  Harness h(Config(/*budget=*/64, 8, /*max_model_len=*/20), KvCacheConfig{40, 4, true});
  const RequestSpec spec = Spec(1, {5, 6, 7, 8, 9, 10}, /*max_tokens=*/6);
  ASSERT_TRUE(h.Add(spec).ok());
  // Waiting: nothing set.
  EXPECT_EQ(h.scheduler().SetDraftTokens(1, std::vector<int32_t>{1, 2}), 0);
  EXPECT_EQ(h.scheduler().SetDraftTokens(99, std::vector<int32_t>{1}), 0);
  h.Step();  // prefill + first token
  const Request* r = h.scheduler().GetRequest(1);
  ASSERT_EQ(r->num_output_tokens(), 1);
  // 5 outputs may follow: at most 4 drafts plus the token sampled after them.
  EXPECT_EQ(h.scheduler().SetDraftTokens(1, std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7}), 4);
  EXPECT_THAT(r->draft_token_ids(), ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(r->num_tokens(), 7);  // drafts are not tokens of the request
  EXPECT_EQ(r->token_ids().size(), 7u);
  EXPECT_EQ(r->output_and_draft_token_ids().size(), 5u);
  // Setting again replaces them.
  EXPECT_EQ(h.scheduler().SetDraftTokens(1, std::vector<int32_t>{9}), 1);
  EXPECT_THAT(r->draft_token_ids(), ElementsAre(9));
  EXPECT_EQ(h.scheduler().SetDraftTokens(1, {}), 0);
  EXPECT_TRUE(r->draft_token_ids().empty());

  // max_model_len: 20 - 7 tokens leaves 13 positions, so max_tokens is the limit here; with a
  // long prompt max_model_len is.
  Harness g(Config(64, 8, /*max_model_len=*/12), KvCacheConfig{40, 4, true});
  ASSERT_TRUE(g.Add(Spec(2, {1, 2, 3, 4, 5, 6, 7, 8, 9}, /*max_tokens=*/3)).ok());
  g.Step();
  // 10 tokens, 12 at most: one draft and the token after it.
  EXPECT_EQ(g.scheduler().SetDraftTokens(2, std::vector<int32_t>{1, 2, 3}), 1);
}

TEST(SpeculativeSchedulerTest, StepVerifiesTheLastTokenAndTheDraftsWithLookaheadSlots) {
  Harness h(Config(64, 8, 64, /*lookahead=*/3), KvCacheConfig{40, 4, true});
  const RequestSpec spec = Spec(1, {5, 6, 7, 8, 9, 10}, /*max_tokens=*/20);
  PrefillOne(h, spec);
  const std::vector<int32_t> expected = ReferenceOutput(spec, h.vocab_size(), 64);
  const Request* r = h.scheduler().GetRequest(1);
  // Two right drafts, one wrong.
  const std::vector<int32_t> drafts = {expected[1], expected[2], (expected[3] + 1) % 64};
  ASSERT_EQ(h.scheduler().SetDraftTokens(1, drafts), 3);
  const SchedulerOutput& out = h.Begin();
  ASSERT_EQ(out.scheduled.size(), 1u);
  const ScheduledRequest& s = out.scheduled[0];
  EXPECT_EQ(s.start_position, 6);
  EXPECT_EQ(s.num_new_tokens, 4);
  EXPECT_EQ(s.num_draft_tokens, 3);
  EXPECT_TRUE(s.samples);
  EXPECT_THAT(s.token_ids, ElementsAre(expected[0], drafts[0], drafts[1], drafts[2]));
  // 7 + 3 tokens + 3 lookahead = 13 slots: 4 blocks of 4.
  EXPECT_EQ(s.block_ids.size(), 4u);
  const std::vector<RequestUpdate> updates = h.Finish();
  ASSERT_EQ(updates.size(), 3u);  // two accepted drafts and the token sampled after them
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(updates[j].new_token, expected[1 + j]);
    EXPECT_EQ(updates[j].offset, j);
    EXPECT_EQ(updates[j].status, RequestStatus::kRunning);
  }
  EXPECT_EQ(r->num_output_tokens(), 4);
  EXPECT_EQ(r->num_computed_tokens(), 9);  // the rejected draft's position does not count
  EXPECT_TRUE(r->draft_token_ids().empty());
  // 10 tokens: 3 blocks; the fourth held only the rejected draft and lookahead slots.
  EXPECT_EQ(h.kv().GetBlockIds(1).size(), 3u);

  // Then every draft accepted: 1 + k tokens in one step.
  ASSERT_EQ(h.scheduler().SetDraftTokens(1, std::vector<int32_t>{expected[4], expected[5]}), 2);
  EXPECT_EQ(h.Step().size(), 3u);
  EXPECT_EQ(r->num_output_tokens(), 7);
  EXPECT_EQ(r->num_computed_tokens(), 12);

  h.SetDrafter([&](const Request& req) {
    const size_t at = req.num_output_tokens();
    std::vector<int32_t> d;
    for (size_t j = at; j < expected.size() && j < at + 2; ++j) d.push_back(expected[j]);
    return d;
  });
  h.RunToCompletion();
  EXPECT_THAT(h.outputs()[1], ElementsAreArray(expected));
}

TEST(SpeculativeSchedulerTest, StopTokenAmongAcceptedDraftsEndsTheRequestThere) {
  Harness h(Config(), KvCacheConfig{40, 4, true});
  RequestSpec spec = Spec(1, {5, 6, 7, 8, 9, 10}, /*max_tokens=*/20);
  const std::vector<int32_t> plain = ReferenceOutput(spec, h.vocab_size(), 64);
  spec.eos_token_ids = {plain[2]};  // the third output stops the request
  const std::vector<int32_t> expected = ReferenceOutput(spec, h.vocab_size(), 64);
  ASSERT_EQ(expected.size(), std::find(plain.begin(), plain.end(), plain[2]) - plain.begin() + 1);
  PrefillOne(h, spec);
  const size_t have = h.outputs()[1].size();
  ASSERT_LT(have, expected.size());
  // Drafts run past the stop token: the ones after it are dropped although accepted.
  std::vector<int32_t> drafts(plain.begin() + have, plain.begin() + have + 4);
  ASSERT_EQ(h.scheduler().SetDraftTokens(1, drafts), 4);
  h.Step();
  EXPECT_THAT(h.outputs()[1], ElementsAreArray(expected));
  EXPECT_EQ(h.statuses()[1], RequestStatus::kFinishedStopped);
  h.Step();
  EXPECT_FALSE(h.kv().HoldsBlocks(1));
  EXPECT_EQ(h.kv().usage().num_used_blocks, 0);
}

TEST(SpeculativeSchedulerTest, NeverOvershootsMaxTokens) {
  for (int32_t max_tokens = 1; max_tokens <= 7; ++max_tokens) {
    Harness h(Config(), KvCacheConfig{40, 4, true});
    const RequestSpec spec = Spec(1, {3, 1, 4, 1, 5}, max_tokens);
    const std::vector<int32_t> expected = ReferenceOutput(spec, h.vocab_size(), 64);
    ASSERT_EQ(static_cast<int32_t>(expected.size()), max_tokens);
    // A perfect drafter proposing far more than is left.
    h.SetDrafter([&](const Request& r) {
      std::vector<int32_t> d;
      for (size_t j = r.num_output_tokens(); j < expected.size(); ++j) d.push_back(expected[j]);
      d.resize(8, 7);
      return d;
    });
    ASSERT_TRUE(h.Add(spec).ok());
    h.RunToCompletion();
    EXPECT_THAT(h.outputs()[1], ElementsAreArray(expected)) << "max_tokens " << max_tokens;
    EXPECT_EQ(h.statuses()[1], RequestStatus::kFinishedLength);
  }
}

TEST(SpeculativeSchedulerTest, DraftsShrinkToTheBudgetLeftByOtherDecodes) {
  Harness h(Config(/*budget=*/4, /*max_seqs=*/4), KvCacheConfig{60, 4, true});
  for (RequestId id = 1; id <= 3; ++id) {
    ASSERT_TRUE(h.Add(Spec(id, {static_cast<int32_t>(id), 2, 3}, 20)).ok());
  }
  while (h.scheduler().GetRequest(3)->num_output_tokens() == 0) h.Step();
  for (RequestId id = 1; id <= 3; ++id) {
    ASSERT_EQ(h.scheduler().SetDraftTokens(id, std::vector<int32_t>{1, 2, 3}), 3);
  }
  const SchedulerOutput& out = h.Begin();
  ASSERT_EQ(out.scheduled.size(), 3u);
  // Budget 4: the first decode may take 2 tokens (one draft), the other two one each.
  EXPECT_EQ(out.scheduled[0].num_draft_tokens, 1);
  EXPECT_EQ(out.scheduled[1].num_draft_tokens, 0);
  EXPECT_EQ(out.scheduled[2].num_draft_tokens, 0);
  EXPECT_EQ(out.total_num_scheduled_tokens, 4);
  EXPECT_EQ(h.scheduler().GetRequest(1)->draft_token_ids().size(), 1u);
  EXPECT_TRUE(h.scheduler().GetRequest(2)->draft_token_ids().empty());
  h.Finish();
}

TEST(SpeculativeSchedulerTest, DraftsNeverPreemptAnotherRequest) {
  // Blocks of 2 tokens. After the first step each request holds 2 blocks (4 and 3 prompt tokens
  // computed) and has 5 and 4 tokens.
  auto start = [](Harness& h) {
    ASSERT_TRUE(h.Add(Spec(1, {1, 2, 3, 4}, 4)).ok());
    ASSERT_TRUE(h.Add(Spec(2, {5, 6, 7}, 4)).ok());
    h.Step();
    ASSERT_EQ(h.scheduler().SetDraftTokens(1, std::vector<int32_t>{1}), 1);
    ASSERT_EQ(h.scheduler().SetDraftTokens(2, std::vector<int32_t>{1}), 1);
  };
  // Two free blocks: both drafts fit (6 and 5 positions, one more block each).
  Harness h(Config(64, 4, 12), KvCacheConfig{7, 2, false});
  start(h);
  ASSERT_EQ(h.kv().num_free_blocks(), 2);
  const SchedulerOutput& out = h.Begin();
  EXPECT_TRUE(out.preempted_request_ids.empty());
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].num_draft_tokens, 1);
  EXPECT_EQ(out.scheduled[1].num_draft_tokens, 1);
  h.Finish();
  // One free block: request 1's draft takes it; request 2 runs without its draft (its 4 tokens
  // fit its blocks) instead of preempting anyone.
  Harness g(Config(64, 4, 10), KvCacheConfig{6, 2, false});
  start(g);
  ASSERT_EQ(g.kv().num_free_blocks(), 1);
  const SchedulerOutput& tight = g.Begin();
  EXPECT_TRUE(tight.preempted_request_ids.empty());
  ASSERT_EQ(tight.scheduled.size(), 2u);
  EXPECT_EQ(tight.scheduled[0].num_draft_tokens, 1);
  EXPECT_EQ(tight.scheduled[1].num_draft_tokens, 0);
  EXPECT_TRUE(g.scheduler().GetRequest(2)->draft_token_ids().empty());
  g.Finish();
}

TEST(SpeculativeSchedulerTest, PrefixCacheNeverHoldsRejectedDrafts) {
  // Block size 4; the prompt fills one block and a half; rejected drafts fill the second block.
  Harness h(Config(), KvCacheConfig{40, 4, true});
  const RequestSpec spec = Spec(1, {11, 12, 13, 14, 15, 16}, /*max_tokens=*/4);
  PrefillOne(h, spec);
  const std::vector<int32_t> expected = ReferenceOutput(spec, h.vocab_size(), 64);
  // Wrong drafts at positions 7 and 8 (the second block's end and the third's start).
  ASSERT_EQ(h.scheduler().SetDraftTokens(1, std::vector<int32_t>{(expected[1] + 1) % 64, (expected[2] + 1) % 64}), 2);
  h.Step();
  ASSERT_EQ(h.outputs()[1].size(), 2u);
  h.RunToCompletion();
  EXPECT_THAT(h.outputs()[1], ElementsAreArray(expected));
  // A second request whose prompt is request 1's prompt + the rejected drafts must not hit the
  // second block; one with the verified tokens does.
  std::vector<int32_t> wrong = spec.prompt_token_ids;
  wrong.push_back(expected[0]);
  wrong.push_back((expected[1] + 1) % 64);
  wrong.push_back(1);
  std::vector<int32_t> right = spec.prompt_token_ids;
  right.insert(right.end(), expected.begin(), expected.end());
  right.push_back(1);
  const int64_t hits_before = h.kv().usage().prefix_hit_tokens;
  ASSERT_TRUE(h.Add(Spec(2, wrong, 1)).ok());
  h.RunToCompletion();
  EXPECT_EQ(h.kv().usage().prefix_hit_tokens - hits_before, 4);  // the first block only
  EXPECT_THAT(h.outputs()[2], ElementsAreArray(ReferenceOutput(Spec(2, wrong, 1), 64, 64)));
  ASSERT_TRUE(h.Add(Spec(3, right, 1)).ok());
  h.RunToCompletion();
  EXPECT_EQ(h.kv().usage().prefix_hit_tokens - hits_before, 4 + 8);
  EXPECT_THAT(h.outputs()[3], ElementsAreArray(ReferenceOutput(Spec(3, right, 1), 64, 64)));
}

TEST(SpeculativeSchedulerTest, PreemptionDropsDraftsAndRecomputesOnlyVerifiedTokens) {
  // A pool that two growing requests cannot share for long: preemptions happen; every output
  // must still be what the request produces alone.
  Harness h(Config(16, 4, 40, /*lookahead=*/2), KvCacheConfig{14, 4, true});
  std::vector<RequestSpec> specs;
  for (RequestId id = 1; id <= 3; ++id) {
    specs.push_back(Spec(id, {static_cast<int32_t>(id * 3), 7, 8, 9, 10}, 24));
    ASSERT_TRUE(h.Add(specs.back()).ok());
  }
  std::map<RequestId, std::vector<int32_t>> expected;
  for (const RequestSpec& spec : specs) expected[spec.id] = ReferenceOutput(spec, 64, 40);
  int step = 0;
  h.SetDrafter([&](const Request& r) {
    std::vector<int32_t> d;
    const std::vector<int32_t>& e = expected[r.id()];
    for (size_t j = r.num_output_tokens(); j < e.size() && d.size() < 3; ++j) {
      d.push_back((j + step) % 3 == 0 ? (e[j] + 1) % 64 : e[j]);  // some wrong
    }
    ++step;
    return d;
  });
  int preemptions = 0;
  while (h.scheduler().HasUnfinishedRequests()) {
    preemptions += static_cast<int>(h.Begin().preempted_request_ids.size());
    h.Finish();
  }
  h.Step();
  EXPECT_GT(preemptions, 0);
  EXPECT_GT(h.drafts_accepted(), 0);
  for (const RequestSpec& spec : specs) {
    EXPECT_THAT(h.outputs()[spec.id], ElementsAreArray(expected[spec.id])) << spec.id;
  }
  EXPECT_EQ(h.kv().usage().num_used_blocks, 0);
}

}  // namespace
}  // namespace moeserve

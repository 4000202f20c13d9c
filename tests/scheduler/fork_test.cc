// Parallel sampling in the scheduler: children forked from a parent share its computed full
// prompt blocks by reference (with prefix caching off), wait for the parent's prompt, survive
// its finish, abort and preemption, and produce what they produce alone.

#include <algorithm>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduler/scheduler.h"
#include "tests/scheduler/fake_model.h"

namespace moeserve {
namespace {

using ::moeserve::testing::Harness;
using ::moeserve::testing::ReferenceOutput;
using ::testing::HasSubstr;

constexpr int32_t kBlock = 4;

std::vector<int32_t> Prompt(int n) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = (i * 37 + 11) % 50 + 1;
  return v;
}

SchedulerConfig Config(int32_t budget = 256, int32_t max_model_len = 64) {
  SchedulerConfig config;
  config.max_num_batched_tokens = budget;
  config.max_num_seqs = std::min(16, budget);
  config.max_model_len = max_model_len;
  return config;
}

KvCacheConfig Kv(int32_t num_blocks, bool prefix_caching = false) {
  return KvCacheConfig{num_blocks, kBlock, prefix_caching};
}

RequestSpec Spec(RequestId id, std::vector<int32_t> prompt, int32_t max_tokens,
                 std::optional<RequestId> parent = std::nullopt) {
  RequestSpec spec;
  spec.id = id;
  spec.prompt_token_ids = std::move(prompt);
  spec.max_tokens = max_tokens;
  spec.ignore_eos = true;
  spec.fork_parent = parent;
  return spec;
}

// Adds a group of n: request `first` and n - 1 children of it.
void AddGroup(Harness& h, RequestId first, int n, const std::vector<int32_t>& prompt, int32_t max_tokens) {
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(first, prompt, max_tokens)).ok());
  for (int i = 1; i < n; ++i) {
    ASSERT_TRUE(h.scheduler().AddRequest(Spec(first + i, prompt, max_tokens, first)).ok());
  }
}

TEST(ForkTest, FourSamplesCostPromptBlocksPlusFourTails) {
  Harness h(Config(), Kv(64));
  const std::vector<int32_t> prompt = Prompt(30);  // 7 full blocks + 2 tokens
  AddGroup(h, 1, 4, prompt, 3);
  // Step 1: only the parent computes the prompt; the children wait for it.
  const SchedulerOutput& first = h.Begin();
  ASSERT_EQ(first.scheduled.size(), 1u);
  EXPECT_EQ(first.scheduled[0].id, 1u);
  EXPECT_EQ(first.scheduled[0].num_new_tokens, 30);
  h.Finish();
  // Step 2: the parent decodes; each child computes only its 2-token tail.
  const SchedulerOutput& second = h.Begin();
  ASSERT_EQ(second.scheduled.size(), 4u);
  for (const ScheduledRequest& s : second.scheduled) {
    if (s.id == 1) continue;
    EXPECT_EQ(s.start_position, 28) << s.id;
    EXPECT_EQ(s.num_new_tokens, 2) << s.id;
  }
  // 7 shared prompt blocks + one tail block each (the parent's tail now holds 3 tokens).
  EXPECT_EQ(h.kv().usage().num_used_blocks, 7 + 4 * 1);
  EXPECT_EQ(h.kv().usage().prefix_hit_tokens, 0);
  h.Finish();
  h.RunToCompletion();
  const std::vector<int32_t> expected = ReferenceOutput(Spec(1, prompt, 3), 64, 64);
  for (RequestId id = 1; id <= 4; ++id) EXPECT_EQ(h.outputs()[id], expected) << id;
}

TEST(ForkTest, PromptOfWholeBlocksSharesAllButTheLastBlock) {
  Harness h(Config(), Kv(64));
  const std::vector<int32_t> prompt = Prompt(16);
  AddGroup(h, 1, 3, prompt, 2);
  h.Step();
  const SchedulerOutput& out = h.Begin();
  for (const ScheduledRequest& s : out.scheduled) {
    if (s.id == 1) continue;
    EXPECT_EQ(s.start_position, 12);  // the child computes the last block (its last token)
    EXPECT_EQ(s.num_new_tokens, 4);
  }
  h.Finish();
  h.RunToCompletion();
  const std::vector<int32_t> expected = ReferenceOutput(Spec(1, prompt, 2), 64, 64);
  for (RequestId id = 1; id <= 3; ++id) EXPECT_EQ(h.outputs()[id], expected) << id;
}

TEST(ForkTest, ChildrenForkFromAParentThatFinishedOnItsFirstToken) {
  Harness h(Config(), Kv(64));
  const std::vector<int32_t> prompt = Prompt(21);
  AddGroup(h, 1, 3, prompt, 1);  // the parent finishes in the step that computes the prompt
  h.Step();
  EXPECT_EQ(h.statuses()[1], RequestStatus::kFinishedLength);
  const SchedulerOutput& out = h.Begin();
  ASSERT_EQ(out.scheduled.size(), 2u);
  for (const ScheduledRequest& s : out.scheduled) EXPECT_EQ(s.start_position, 20);
  EXPECT_THAT(out.finished_request_ids, ::testing::ElementsAre(1));
  EXPECT_FALSE(h.kv().HoldsBlocks(1));
  h.Finish();
  h.RunToCompletion();
  const std::vector<int32_t> expected = ReferenceOutput(Spec(1, prompt, 1), 64, 64);
  ASSERT_EQ(expected.size(), 1u);
  for (RequestId id = 1; id <= 3; ++id) EXPECT_EQ(h.outputs()[id], expected) << id;
}

TEST(ForkTest, ChunkedParentPrefillKeepsChildrenWaitingForTheSharedBlocks) {
  Harness h(Config(/*budget=*/8), Kv(64));
  const std::vector<int32_t> prompt = Prompt(20);
  AddGroup(h, 1, 2, prompt, 2);
  for (int step = 0; step < 2; ++step) {
    const SchedulerOutput& out = h.Begin();
    ASSERT_EQ(out.scheduled.size(), 1u);  // 8 + 8 of 20 prompt tokens: the child waits
    EXPECT_EQ(out.scheduled[0].id, 1u);
    h.Finish();
  }
  // The 4 blocks the child can share are computed: it forks them while the parent computes its
  // last chunk, and computes its own last block.
  const SchedulerOutput& out = h.Begin();
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[1].id, 2u);
  EXPECT_EQ(out.scheduled[1].start_position, 16);
  EXPECT_EQ(out.scheduled[1].num_new_tokens, 4);
  h.Finish();
  h.RunToCompletion();
  const std::vector<int32_t> expected = ReferenceOutput(Spec(1, prompt, 2), 64, 64);
  EXPECT_EQ(h.outputs()[1], expected);
  EXPECT_EQ(h.outputs()[2], expected);
}

TEST(ForkTest, WaitingChildDoesNotBlockLaterRequests) {
  Harness h(Config(/*budget=*/24), Kv(64));
  const std::vector<int32_t> prompt = Prompt(20);
  AddGroup(h, 1, 2, prompt, 2);
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(9, Prompt(3), 2)).ok());
  const SchedulerOutput& out = h.Begin();
  ASSERT_EQ(out.scheduled.size(), 2u);  // the parent's chunk and request 9, past the child
  EXPECT_EQ(out.scheduled[1].id, 9u);
  h.Finish();
  h.RunToCompletion();
  const std::vector<int32_t> expected = ReferenceOutput(Spec(1, prompt, 2), 64, 64);
  EXPECT_EQ(h.outputs()[1], expected);
  EXPECT_EQ(h.outputs()[2], expected);
  EXPECT_EQ(h.outputs()[9], ReferenceOutput(Spec(9, Prompt(3), 2), 64, 64));
}

TEST(ForkTest, AbortedParentLeavesChildrenComplete) {
  Harness h(Config(), Kv(64));
  const std::vector<int32_t> prompt = Prompt(26);
  AddGroup(h, 1, 3, prompt, 4);
  h.Step();
  ASSERT_TRUE(h.scheduler().Abort(1));
  h.RunToCompletion();
  const std::vector<int32_t> expected = ReferenceOutput(Spec(2, prompt, 4), 64, 64);
  EXPECT_EQ(h.outputs()[2], expected);
  EXPECT_EQ(h.outputs()[3], expected);
}

TEST(ForkTest, AbortingTheWholeGroupReleasesEverything) {
  Harness h(Config(), Kv(64));
  AddGroup(h, 1, 4, Prompt(26), 8);
  h.Step();
  h.Step();
  for (RequestId id = 1; id <= 4; ++id) ASSERT_TRUE(h.scheduler().Abort(id));
  h.Step();
  EXPECT_EQ(h.kv().usage().num_used_blocks, 0);
  EXPECT_FALSE(h.scheduler().HasUnfinishedRequests());
}

TEST(ForkTest, PreemptedChildLeavesSharedBlocksIntact) {
  // 7 + 4 + 1 blocks for the prompt, the tails and one growth: the group runs out of blocks as
  // the samples grow, and the newest child is preempted while the others keep reading the
  // shared prompt blocks.
  Harness h(Config(256, /*max_model_len=*/48), Kv(14));
  const std::vector<int32_t> prompt = Prompt(29);
  AddGroup(h, 1, 4, prompt, 12);
  int preemptions = 0;
  for (int steps = 0; h.scheduler().HasUnfinishedRequests(); ++steps) {
    ASSERT_LT(steps, 1000) << "the group never finishes";
    preemptions += static_cast<int>(h.Begin().preempted_request_ids.size());
    h.Finish();
  }
  h.Step();
  EXPECT_GT(preemptions, 0);
  const std::vector<int32_t> expected = ReferenceOutput(Spec(1, prompt, 12), 64, 64);
  for (RequestId id = 1; id <= 4; ++id) EXPECT_EQ(h.outputs()[id], expected) << id;
  EXPECT_EQ(h.kv().usage().num_used_blocks, 0);
}

TEST(ForkTest, RejectsAForkOfAnUnknownParentOrADifferentPrompt) {
  Harness h(Config(), Kv(64));
  absl::Status status = h.scheduler().AddRequest(Spec(2, Prompt(8), 2, /*parent=*/1));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("fork_parent 1"));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, Prompt(8), 2)).ok());
  status = h.scheduler().AddRequest(Spec(2, Prompt(9), 2, /*parent=*/1));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("different prompt"));
}

}  // namespace
}  // namespace moeserve

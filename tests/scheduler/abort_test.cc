// Abort (and engine-side Finish) from every state: queued, mid-prefill, decoding, preempted, and
// while the request's final step is in flight. Everything is released by the next Schedule().

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduler/scheduler.h"
#include "tests/scheduler/fake_model.h"

namespace moeserve {
namespace {

using ::moeserve::testing::Harness;
using ::moeserve::testing::ReferenceOutput;
using ::testing::Contains;
using ::testing::ElementsAre;

std::vector<int32_t> Prompt(int n, int seed) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = (seed * 131 + i * 17) % 50 + 1;
  return v;
}

RequestSpec Spec(RequestId id, int prompt_len, int32_t max_tokens) {
  RequestSpec spec;
  spec.id = id;
  spec.prompt_token_ids = Prompt(prompt_len, static_cast<int>(id));
  spec.max_tokens = max_tokens;
  return spec;
}

SchedulerConfig Config(int32_t budget, int32_t max_seqs, int32_t max_model_len = 64) {
  SchedulerConfig config;
  config.max_num_batched_tokens = budget;
  config.max_num_seqs = max_seqs;
  config.max_model_len = max_model_len;
  return config;
}

KvCacheConfig Kv(int32_t num_blocks) { return KvCacheConfig{num_blocks, 4, true}; }

bool IsPrefix(const std::vector<int32_t>& prefix, const std::vector<int32_t>& of) {
  return prefix.size() <= of.size() && std::equal(prefix.begin(), prefix.end(), of.begin());
}

TEST(AbortTest, Queued) {
  Harness h(Config(64, /*max_seqs=*/1), Kv(40));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, 8, 4)).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(2, 8, 4)).ok());
  h.Step();
  ASSERT_EQ(h.scheduler().GetRequest(2)->status(), RequestStatus::kWaiting);
  EXPECT_TRUE(h.scheduler().Abort(2));
  EXPECT_FALSE(h.scheduler().Abort(2));  // already finished
  EXPECT_EQ(h.scheduler().num_waiting(), 0);
  EXPECT_EQ(h.scheduler().num_queued_tokens(), 0);
  h.CheckIntegrity();
  const SchedulerOutput& out = h.Begin();
  EXPECT_THAT(out.finished_request_ids, ElementsAre(2));
  EXPECT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(h.scheduler().GetRequest(2), nullptr);
  h.Finish();
  h.RunToCompletion();
  EXPECT_EQ(h.outputs().count(2), 0u);
}

TEST(AbortTest, UnknownId) {
  Harness h(Config(64, 4), Kv(40));
  EXPECT_FALSE(h.scheduler().Abort(42));
}

TEST(AbortTest, MidPrefillKeepsComputedBlocksCached) {
  Harness h(Config(/*budget=*/8, 4), Kv(40));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, 30, 4)).ok());
  h.Step();
  h.Step();  // 16 of 30 prompt tokens computed
  ASSERT_EQ(h.scheduler().GetRequest(1)->num_computed_tokens(), 16);
  EXPECT_TRUE(h.scheduler().Abort(1));
  const SchedulerOutput& out = h.Begin();
  EXPECT_THAT(out.finished_request_ids, ElementsAre(1));
  EXPECT_TRUE(out.scheduled.empty());
  EXPECT_EQ(h.kv().usage().num_used_blocks, 0);
  EXPECT_EQ(h.kv().usage().num_cached_free_blocks, 4);  // the 16 computed tokens
  h.Finish();
  // The same prompt again resumes from the computed prefix and gives the undisturbed output.
  RequestSpec again = Spec(1, 30, 4);
  ASSERT_TRUE(h.scheduler().AddRequest(again).ok());
  const SchedulerOutput& resumed = h.Begin();
  EXPECT_EQ(resumed.scheduled[0].start_position, 16);
  h.Finish();
  h.RunToCompletion();
  EXPECT_EQ(h.outputs()[1], ReferenceOutput(again, h.vocab_size(), 64));
}

TEST(AbortTest, WhileItsPrefillIsInFlight) {
  Harness h(Config(64, 4), Kv(40));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, 9, 4)).ok());
  h.Begin();
  EXPECT_TRUE(h.scheduler().Abort(1));
  h.CheckIntegrity();
  EXPECT_TRUE(h.Finish().empty());  // the sampled token is dropped
  const SchedulerOutput& out = h.Begin();
  EXPECT_THAT(out.finished_request_ids, ElementsAre(1));
  // Nothing computed counts: no block from the aborted step entered the cache.
  EXPECT_EQ(h.kv().usage().num_cached_free_blocks, 0);
  EXPECT_EQ(h.kv().usage().num_used_blocks, 0);
  h.Finish();
}

TEST(AbortTest, Decoding) {
  Harness h(Config(64, 4), Kv(40));
  const RequestSpec spec = Spec(1, 6, 20);
  ASSERT_TRUE(h.scheduler().AddRequest(spec).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(2, 6, 20)).ok());
  for (int i = 0; i < 5; ++i) h.Step();
  EXPECT_TRUE(h.scheduler().Abort(1));
  h.CheckIntegrity();
  EXPECT_EQ(h.scheduler().num_running(), 1);
  const SchedulerOutput& out = h.Begin();
  EXPECT_THAT(out.finished_request_ids, ElementsAre(1));
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].id, 2u);
  h.Finish();
  EXPECT_EQ(h.outputs()[1].size(), 5u);
  EXPECT_TRUE(IsPrefix(h.outputs()[1], ReferenceOutput(spec, h.vocab_size(), 64)));
  h.RunToCompletion();
  EXPECT_EQ(h.outputs()[2], ReferenceOutput(Spec(2, 6, 20), h.vocab_size(), 64));
}

TEST(AbortTest, OnItsFinalStep) {
  Harness h(Config(64, 4), Kv(40));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, 6, 3)).ok());
  h.Step();
  h.Step();  // two outputs; the next step would produce the third and last
  const SchedulerOutput& last = h.Begin();
  ASSERT_EQ(last.scheduled.size(), 1u);
  ASSERT_TRUE(last.scheduled[0].samples);
  EXPECT_TRUE(h.scheduler().Abort(1));
  EXPECT_TRUE(h.Finish().empty());
  EXPECT_EQ(h.outputs()[1].size(), 2u);
  EXPECT_EQ(h.statuses().count(1), 0u);
  EXPECT_EQ(h.scheduler().GetRequest(1)->status(), RequestStatus::kFinishedAborted);
  const SchedulerOutput& out = h.Begin();
  EXPECT_THAT(out.finished_request_ids, ElementsAre(1));
  EXPECT_EQ(h.kv().usage().num_used_blocks, 0);
  h.Finish();
}

TEST(AbortTest, AfterItFinishedIsANoOp) {
  Harness h(Config(64, 4), Kv(40));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, 6, 1)).ok());
  h.Step();
  ASSERT_EQ(h.statuses()[1], RequestStatus::kFinishedLength);
  EXPECT_FALSE(h.scheduler().Abort(1));
  EXPECT_EQ(h.scheduler().GetRequest(1)->status(), RequestStatus::kFinishedLength);
  EXPECT_THAT(h.Begin().finished_request_ids, ElementsAre(1));
  h.Finish();
}

TEST(AbortTest, Preempted) {
  // 10 usable blocks of 4: two requests growing to 40 tokens each cannot both fit.
  Harness h(Config(64, 4, /*max_model_len=*/40), Kv(11));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, 8, 30)).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(2, 8, 30)).ok());
  RequestId victim = 0;
  for (int i = 0; i < 100 && victim == 0; ++i) {
    const SchedulerOutput& out = h.Begin();
    if (!out.preempted_request_ids.empty()) victim = out.preempted_request_ids[0];
    h.Finish();
  }
  ASSERT_EQ(victim, 2u);  // the newer one
  ASSERT_EQ(h.scheduler().GetRequest(2)->status(), RequestStatus::kPreempted);
  EXPECT_TRUE(h.scheduler().Abort(2));
  h.CheckIntegrity();
  EXPECT_THAT(h.Begin().finished_request_ids, Contains(2));
  h.Finish();
  h.RunToCompletion();
  EXPECT_EQ(h.outputs()[1], ReferenceOutput(Spec(1, 8, 30), h.vocab_size(), 40));
}

TEST(AbortTest, EngineFinishesOnStopString) {
  Harness h(Config(64, 4), Kv(40));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, 6, 10)).ok());
  h.Step();
  h.Step();
  EXPECT_TRUE(h.scheduler().Finish(1, RequestStatus::kFinishedStopped));
  EXPECT_EQ(h.scheduler().GetRequest(1)->status(), RequestStatus::kFinishedStopped);
  EXPECT_THAT(h.Begin().finished_request_ids, ElementsAre(1));
  h.Finish();
  EXPECT_EQ(h.kv().usage().num_used_blocks, 0);
}

}  // namespace
}  // namespace moeserve

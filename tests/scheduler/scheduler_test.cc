#include "server/scheduler/scheduler.h"

#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/fake_model.h"

namespace moeserve {
namespace {

using ::moeserve::testing::Harness;
using ::moeserve::testing::ReferenceOutput;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<int32_t> Prompt(int n, int seed) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = (seed * 7919 + i * 31) % 50 + 1;
  return v;
}

RequestSpec Spec(RequestId id, std::vector<int32_t> prompt, int32_t max_tokens, int32_t priority = 0) {
  RequestSpec spec;
  spec.id = id;
  spec.prompt_token_ids = std::move(prompt);
  spec.max_tokens = max_tokens;
  spec.priority = priority;
  return spec;
}

SchedulerConfig Config(int32_t budget, int32_t max_seqs, int32_t max_model_len = 64) {
  SchedulerConfig config;
  config.max_num_batched_tokens = budget;
  config.max_num_seqs = max_seqs;
  config.max_model_len = max_model_len;
  return config;
}

KvCacheConfig Kv(int32_t num_blocks, int32_t block_size = 4) { return KvCacheConfig{num_blocks, block_size, true}; }

const ScheduledRequest* Find(const SchedulerOutput& out, RequestId id) {
  for (const ScheduledRequest& s : out.scheduled) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

TEST(SchedulerConfigTest, RejectsInconsistentConfigNamingTheField) {
  auto kv = *KvCacheManager::Create(Kv(100));
  auto bad_budget = Scheduler::Create(Config(8, 16), kv.get());
  ASSERT_FALSE(bad_budget.ok());
  EXPECT_THAT(bad_budget.status().message(), HasSubstr("max_num_batched_tokens"));
  auto too_long = Scheduler::Create(Config(64, 4, /*max_model_len=*/1000), kv.get());
  ASSERT_FALSE(too_long.ok());
  EXPECT_THAT(too_long.status().message(), HasSubstr("max_model_len=1000"));
  SchedulerConfig negative = Config(64, 4);
  negative.max_queued_requests = -1;
  EXPECT_THAT(Scheduler::Create(negative, kv.get()).status().message(), HasSubstr("max_queued_requests"));
  EXPECT_TRUE(Scheduler::Create(Config(64, 4), kv.get()).ok());
}

TEST(SchedulerTest, RejectsBadRequests) {
  Harness h(Config(64, 4, /*max_model_len=*/32), Kv(20));
  const absl::Status empty = h.scheduler().AddRequest(Spec(1, {}, 4));
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  const absl::Status too_long = h.scheduler().AddRequest(Spec(2, Prompt(33, 1), 4));
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_long.message(), HasSubstr("max_model_len=32"));
  EXPECT_THAT(h.scheduler().AddRequest(Spec(3, Prompt(4, 1), 0)).message(), HasSubstr("max_tokens"));
  RequestSpec min_too_big = Spec(4, Prompt(4, 1), 2);
  min_too_big.min_tokens = 3;
  EXPECT_THAT(h.scheduler().AddRequest(min_too_big).message(), HasSubstr("min_tokens"));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(5, Prompt(4, 1), 2)).ok());
  EXPECT_EQ(h.scheduler().AddRequest(Spec(5, Prompt(4, 1), 2)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(h.scheduler().num_waiting(), 1);
}

TEST(SchedulerTest, AdmissionControlByQueuedRequests) {
  SchedulerConfig config = Config(64, 4);
  config.max_queued_requests = 2;
  Harness h(config, Kv(100));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, Prompt(8, 1), 4)).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(2, Prompt(8, 2), 4)).ok());
  const absl::Status refused = h.scheduler().AddRequest(Spec(3, Prompt(8, 3), 4));
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("max_queued_requests=2"));
  EXPECT_EQ(h.scheduler().GetRequest(3), nullptr);
  h.Step();  // both start running: the queue empties
  EXPECT_TRUE(h.scheduler().AddRequest(Spec(3, Prompt(8, 3), 4)).ok());
}

TEST(SchedulerTest, AdmissionControlByQueuedTokens) {
  SchedulerConfig config = Config(64, 4);
  config.max_queued_tokens = 20;
  Harness h(config, Kv(100));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, Prompt(12, 1), 4)).ok());
  const absl::Status refused = h.scheduler().AddRequest(Spec(2, Prompt(9, 2), 4));
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("max_queued_tokens=20"));
  EXPECT_TRUE(h.scheduler().AddRequest(Spec(2, Prompt(8, 2), 4)).ok());
  EXPECT_EQ(h.scheduler().num_queued_tokens(), 20);
}

TEST(SchedulerTest, SingleRequestPrefillThenDecodeToMaxTokens) {
  Harness h(Config(64, 4), Kv(20));
  const RequestSpec spec = Spec(7, Prompt(10, 3), 5);
  ASSERT_TRUE(h.scheduler().AddRequest(spec).ok());
  const SchedulerOutput& first = h.Begin();
  ASSERT_EQ(first.scheduled.size(), 1u);
  EXPECT_EQ(first.scheduled[0].start_position, 0);
  EXPECT_EQ(first.scheduled[0].num_new_tokens, 10);
  EXPECT_EQ(first.scheduled[0].block_ids.size(), 3u);  // 10 tokens in blocks of 4
  EXPECT_TRUE(first.scheduled[0].samples);
  EXPECT_EQ(first.total_num_scheduled_tokens, 10);
  h.Finish();
  for (int i = 0; i < 4; ++i) {
    const SchedulerOutput& out = h.Begin();
    ASSERT_EQ(out.scheduled.size(), 1u);
    EXPECT_EQ(out.scheduled[0].start_position, 10 + i);
    EXPECT_EQ(out.scheduled[0].num_new_tokens, 1);
    EXPECT_EQ(out.scheduled[0].token_ids[0], h.outputs()[7].back());
    h.Finish();
  }
  EXPECT_EQ(h.statuses()[7], RequestStatus::kFinishedLength);
  EXPECT_EQ(h.outputs()[7], ReferenceOutput(spec, h.vocab_size(), 64));
  EXPECT_EQ(h.scheduler().GetRequest(7)->num_output_tokens(), 5);
  EXPECT_EQ(h.kv().usage().num_used_blocks, 0);  // freed when it finished
  const SchedulerOutput& after = h.Begin();
  EXPECT_THAT(after.finished_request_ids, ElementsAre(7));
  EXPECT_EQ(h.scheduler().GetRequest(7), nullptr);
  h.Finish();
}

TEST(SchedulerTest, FinishesAtMaxModelLen) {
  Harness h(Config(64, 4, /*max_model_len=*/12), Kv(20));
  const RequestSpec spec = Spec(1, Prompt(10, 3), 100);
  ASSERT_TRUE(h.scheduler().AddRequest(spec).ok());
  h.RunToCompletion();
  EXPECT_EQ(h.outputs()[1].size(), 2u);
  EXPECT_EQ(h.statuses()[1], RequestStatus::kFinishedLength);
}

TEST(SchedulerTest, StopsOnEosUnlessIgnoredAndOnStopIdsAfterMinTokens) {
  RequestSpec base = Spec(1, Prompt(6, 9), 12);
  const std::vector<int32_t> free_run = ReferenceOutput(base, 64, 64);
  ASSERT_EQ(free_run.size(), 12u);
  const int32_t eos = free_run[3];
  const size_t first_eos = std::find(free_run.begin(), free_run.end(), eos) - free_run.begin();
  struct Case {
    bool ignore_eos;
    bool as_stop_id;
    int32_t min_tokens;
  };
  RequestId id = 1;
  // EOS is output number first_eos + 1: with min_tokens exactly that it counts and stops the
  // request; one more and it does not.
  const int32_t eos_position = static_cast<int32_t>(first_eos) + 1;
  for (const Case& c :
       {Case{false, false, 0}, Case{true, false, 0}, Case{true, true, 0}, Case{false, false, eos_position},
        Case{true, true, eos_position}, Case{false, false, eos_position + 1}}) {
    Harness h(Config(64, 4), Kv(40));
    RequestSpec spec = base;
    spec.id = id++;
    (c.as_stop_id ? spec.stop_token_ids : spec.eos_token_ids).push_back(eos);
    spec.ignore_eos = c.ignore_eos;
    spec.min_tokens = c.min_tokens;
    ASSERT_TRUE(h.scheduler().AddRequest(spec).ok());
    h.RunToCompletion();
    const std::vector<int32_t> expected = ReferenceOutput(spec, 64, 64);
    EXPECT_EQ(h.outputs()[spec.id], expected);
    const bool stops = !(c.ignore_eos && !c.as_stop_id);
    const size_t produced = h.outputs()[spec.id].size();
    if (stops && c.min_tokens <= eos_position) {
      EXPECT_EQ(produced, first_eos + 1) << "min_tokens " << c.min_tokens;
      EXPECT_EQ(h.statuses()[spec.id], RequestStatus::kFinishedStopped);
    } else if (!stops) {
      EXPECT_EQ(produced, 12u);
      EXPECT_EQ(h.statuses()[spec.id], RequestStatus::kFinishedLength);
    } else {
      EXPECT_GT(produced, first_eos + 1) << "min_tokens " << c.min_tokens;
    }
  }
}

TEST(SchedulerTest, ChunkedPrefillNeverStallsDecodes) {
  Harness h(Config(/*budget=*/8, /*max_seqs=*/4), Kv(60));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, Prompt(3, 1), 30)).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(2, Prompt(2, 2), 30)).ok());
  h.Step();  // both prefill in one step (5 tokens)
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(3, Prompt(40, 3), 4)).ok());
  int prefill_steps = 0;
  int32_t prefilled = 0;
  while (prefilled < 40) {
    const SchedulerOutput& out = h.Begin();
    ASSERT_NE(Find(out, 1), nullptr);
    ASSERT_NE(Find(out, 2), nullptr);
    EXPECT_EQ(Find(out, 1)->num_new_tokens, 1);
    EXPECT_EQ(Find(out, 2)->num_new_tokens, 1);
    const ScheduledRequest* long_one = Find(out, 3);
    ASSERT_NE(long_one, nullptr);
    EXPECT_EQ(long_one->start_position, prefilled);
    EXPECT_EQ(long_one->num_new_tokens, std::min(6, 40 - prefilled));
    EXPECT_EQ(long_one->samples, prefilled + long_one->num_new_tokens == 40);
    EXPECT_EQ(out.total_num_scheduled_tokens, 2 + long_one->num_new_tokens);
    prefilled += long_one->num_new_tokens;
    h.Finish();
    ++prefill_steps;
  }
  EXPECT_EQ(prefill_steps, 7);
  EXPECT_EQ(h.outputs()[3].size(), 1u);  // the first token came with the last chunk
  h.RunToCompletion();
  for (RequestId id : {1, 2, 3}) {
    const RequestSpec spec = Spec(id, Prompt(id == 3 ? 40 : (id == 1 ? 3 : 2), id), id == 3 ? 4 : 30);
    EXPECT_EQ(h.outputs()[id], ReferenceOutput(spec, h.vocab_size(), 64)) << id;
  }
}

TEST(SchedulerTest, RunningPrefillLeavesRoomForDecodesBehindIt) {
  // A high-priority long prefill ahead of low-priority decodes in the running order.
  Harness h(Config(/*budget=*/8, /*max_seqs=*/4), Kv(60));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, Prompt(2, 1), 30, /*priority=*/5)).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(2, Prompt(2, 2), 30, /*priority=*/5)).ok());
  h.Step();
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(3, Prompt(30, 3), 4, /*priority=*/0)).ok());
  h.Step();  // admitted with the 6 tokens left after the two decodes
  for (int i = 0; i < 3; ++i) {
    const SchedulerOutput& out = h.Begin();
    ASSERT_EQ(out.scheduled.size(), 3u);
    EXPECT_EQ(out.scheduled[0].id, 3u);  // first in running order
    EXPECT_EQ(out.scheduled[0].num_new_tokens, 6);
    EXPECT_EQ(out.total_num_scheduled_tokens, 8);
    h.Finish();
  }
}

TEST(SchedulerTest, LongPrefillThresholdCapsChunks) {
  SchedulerConfig config = Config(64, 4);
  config.long_prefill_token_threshold = 10;
  Harness h(config, Kv(60));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, Prompt(25, 1), 2)).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(2, Prompt(25, 2), 2)).ok());
  const SchedulerOutput& out = h.Begin();
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].num_new_tokens, 10);
  EXPECT_EQ(out.scheduled[1].num_new_tokens, 10);
  h.Finish();
  h.RunToCompletion();
  EXPECT_EQ(h.outputs()[1], ReferenceOutput(Spec(1, Prompt(25, 1), 2), 64, 64));
}

TEST(SchedulerTest, PrioritiesThenFcfs) {
  Harness h(Config(64, /*max_seqs=*/1), Kv(60));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, Prompt(4, 1), 2, /*priority=*/5)).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(2, Prompt(4, 2), 2, /*priority=*/0)).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(3, Prompt(4, 3), 2, /*priority=*/0)).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(4, Prompt(4, 4), 2, /*priority=*/-1)).ok());
  std::vector<RequestId> order;
  while (h.scheduler().HasUnfinishedRequests()) {
    const SchedulerOutput& out = h.Begin();
    ASSERT_EQ(out.scheduled.size(), 1u);
    if (out.scheduled[0].start_position == 0) order.push_back(out.scheduled[0].id);
    h.Finish();
  }
  EXPECT_THAT(order, ElementsAre(4, 2, 3, 1));
}

TEST(SchedulerTest, PrefixHitAcrossRequests) {
  Harness h(Config(64, 4), Kv(60));
  std::vector<int32_t> shared = Prompt(20, 5);
  std::vector<int32_t> second = shared;
  second.push_back(49);
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, shared, 3)).ok());
  h.RunToCompletion();
  RequestSpec hit = Spec(2, second, 3);
  RequestSpec salted = Spec(3, second, 3);
  salted.cache_salt = "other tenant";
  ASSERT_TRUE(h.scheduler().AddRequest(hit).ok());
  ASSERT_TRUE(h.scheduler().AddRequest(salted).ok());
  const SchedulerOutput& out = h.Begin();
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(Find(out, 2)->start_position, 20);  // 5 full blocks of the shared prompt
  EXPECT_EQ(Find(out, 2)->num_new_tokens, 1);
  EXPECT_EQ(Find(out, 3)->start_position, 0);
  EXPECT_EQ(h.scheduler().GetRequest(2)->num_cached_prompt_tokens(), 20);
  EXPECT_EQ(h.scheduler().GetRequest(3)->num_cached_prompt_tokens(), 0);
  h.Finish();
  h.RunToCompletion();
  EXPECT_EQ(h.outputs()[2], ReferenceOutput(hit, 64, 64));
  EXPECT_EQ(h.outputs()[3], h.outputs()[2]);
  EXPECT_EQ(h.kv().usage().prefix_hit_tokens, 20);
}

TEST(SchedulerTest, SkipPrefixCacheLookupComputesTheWholePromptAndStillCaches) {
  Harness h(Config(64, 4), Kv(60));
  std::vector<int32_t> prompt = Prompt(21, 6);
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, prompt, 3)).ok());
  h.RunToCompletion();
  RequestSpec skipping = Spec(2, prompt, 3);
  skipping.skip_prefix_cache_lookup = true;
  ASSERT_TRUE(h.scheduler().AddRequest(skipping).ok());
  const SchedulerOutput& out = h.Begin();
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(Find(out, 2)->start_position, 0);
  EXPECT_EQ(Find(out, 2)->num_new_tokens, 21);
  EXPECT_EQ(h.scheduler().GetRequest(2)->num_cached_prompt_tokens(), 0);
  h.Finish();
  h.RunToCompletion();
  EXPECT_EQ(h.outputs()[2], ReferenceOutput(skipping, 64, 64));
  // Its blocks (or the equal ones already cached) still serve the next request.
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(3, prompt, 3)).ok());
  EXPECT_EQ(h.Begin().scheduled.at(0).start_position, 20);
  h.Finish();
  h.RunToCompletion();
}

TEST(SchedulerTest, IdenticalPromptRecomputesItsLastToken) {
  Harness h(Config(64, 4), Kv(60));
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(1, Prompt(16, 5), 1)).ok());
  h.RunToCompletion();
  ASSERT_TRUE(h.scheduler().AddRequest(Spec(2, Prompt(16, 5), 1)).ok());
  const SchedulerOutput& out = h.Begin();
  EXPECT_EQ(out.scheduled[0].start_position, 12);
  EXPECT_EQ(out.scheduled[0].num_new_tokens, 4);
  h.Finish();
  EXPECT_EQ(h.outputs()[2], h.outputs()[1]);
}

TEST(SchedulerTest, PreemptsLowestPriorityNewestAndResumesWithSameOutput) {
  // 12 usable blocks of 4 tokens = 48 tokens for three requests that want 3 x 28.
  Harness h(Config(64, 4, /*max_model_len=*/48), Kv(13));
  const RequestSpec a = Spec(1, Prompt(8, 1), 20, /*priority=*/1);  // oldest, but lowest priority
  const RequestSpec b = Spec(2, Prompt(8, 2), 20, /*priority=*/0);
  const RequestSpec c = Spec(3, Prompt(8, 3), 20, /*priority=*/0);
  for (const RequestSpec& s : {a, b, c}) ASSERT_TRUE(h.scheduler().AddRequest(s).ok());
  std::vector<RequestId> preempted;
  for (int step = 0; step < 500 && h.scheduler().HasUnfinishedRequests(); ++step) {
    const SchedulerOutput& out = h.Begin();
    preempted.insert(preempted.end(), out.preempted_request_ids.begin(), out.preempted_request_ids.end());
    for (RequestId id : out.preempted_request_ids) {
      EXPECT_FALSE(h.kv().HoldsBlocks(id));
      EXPECT_EQ(h.scheduler().GetRequest(id)->num_computed_tokens(), 0);
      EXPECT_EQ(h.scheduler().GetRequest(id)->status(), RequestStatus::kPreempted);
    }
    h.Finish();
  }
  ASSERT_FALSE(preempted.empty());
  EXPECT_EQ(preempted.front(), 1u);  // priority beats age
  h.RunToCompletion();
  for (const RequestSpec& s : {a, b, c}) {
    EXPECT_EQ(h.outputs()[s.id], ReferenceOutput(s, h.vocab_size(), 48)) << s.id;
  }
}

std::vector<std::string> ScheduleLog(int num_blocks) {
  Harness h(Config(16, 4, /*max_model_len=*/40), Kv(num_blocks));
  for (RequestId id = 1; id <= 6; ++id) {
    EXPECT_TRUE(h.scheduler().AddRequest(Spec(id, Prompt(6 + id, id), 12, id % 2)).ok());
  }
  std::vector<std::string> log;
  while (h.scheduler().HasUnfinishedRequests()) {
    const SchedulerOutput& out = h.Begin();
    std::string line;
    for (const ScheduledRequest& s : out.scheduled) {
      absl::StrAppend(&line, s.id, "@", s.start_position, "+", s.num_new_tokens, "[", absl::StrJoin(s.block_ids, ","),
                      "] ");
    }
    absl::StrAppend(&line, "p:", absl::StrJoin(out.preempted_request_ids, ","));
    log.push_back(line);
    h.Finish();
  }
  for (RequestId id = 1; id <= 6; ++id) {
    EXPECT_EQ(h.outputs()[id], ReferenceOutput(Spec(id, Prompt(6 + id, id), 12, id % 2), 64, 40));
  }
  return log;
}

TEST(SchedulerTest, PreemptionScheduleIsDeterministic) {
  const std::vector<std::string> first = ScheduleLog(11);
  const std::vector<std::string> second = ScheduleLog(11);
  EXPECT_EQ(first, second);
  int preemptions = 0;
  for (const std::string& line : first) preemptions += line.back() != ':';
  EXPECT_GT(preemptions, 0);
}

}  // namespace
}  // namespace moeserve

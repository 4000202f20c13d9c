// Parallel sampling (SamplingParams::n > 1) through the engine: n completions per request, told
// apart by index, the prompt's KV blocks computed once and shared, seeds derived per sample,
// usage over all samples, aborts of the whole group, and integrity under random load.

#include <algorithm>
#include <random>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "tests/engine/engine_test_util.h"

namespace moeserve::testing {
namespace {

constexpr int32_t kMaxModelLen = kFixtureMaxModelLen;

EngineConfig Config() {
  EngineConfig c = RoomyConfig();
  c.check_integrity_every_step = true;
  return c;
}

std::vector<int32_t> Prompt(int n) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = 3 + (i * 37) % 250;
  return v;
}

// Runs one request to the end and returns each sample's merged output, by index.
std::vector<RequestOutput> RunSamples(Engine& engine, EngineRequest request) {
  auto stream = engine.AddRequest(std::move(request));
  EXPECT_TRUE(stream.ok()) << stream.status();
  if (!stream.ok()) return {};
  RunChecked(engine);
  return FinishedOutputs(**stream);
}

TEST(ParallelSamplingTest, PromptBlocksAreComputedOnceAndShared) {
  EngineConfig c = Config();
  c.enable_prefix_caching = false;  // the fork shares blocks by itself
  auto engine = MakeFixtureEngine("llama", c);
  EngineRequest r;
  r.prompt_token_ids = Prompt(30);  // 7 full blocks of 4 + 2 tokens
  r.sampling = Greedy(3);
  r.sampling.n = 4;
  ASSERT_TRUE(engine->AddRequest(r).ok());
  ASSERT_TRUE(engine->Step());  // sample 0 computes the prompt; the others wait for it
  EXPECT_EQ(engine->GetMetrics().tokens_computed, 30);
  EXPECT_EQ(engine->GetMetrics().kv_blocks_used, 8);
  ASSERT_TRUE(engine->Step());  // samples 1-3 compute their 2-token tails; sample 0 decodes
  EXPECT_EQ(engine->GetMetrics().tokens_computed, 30 + 1 + 3 * 2);
  // prompt_blocks + 4 x tail, not 4 x prompt (which would be 32).
  EXPECT_EQ(engine->GetMetrics().kv_blocks_used, 7 + 4 * 1);
  RunChecked(*engine);
  EXPECT_EQ(engine->GetMetrics().kv_blocks_used, 0);
}

TEST(ParallelSamplingTest, GreedySamplesAreIdenticalWithIndicesAndSummedUsage) {
  auto engine = MakeFixtureEngine("deepseek_v3", Config());
  EngineRequest r;
  r.prompt_token_ids = Prompt(21);
  r.sampling = Greedy(6);
  const std::vector<int32_t> alone = RunAll(*engine, {r}).at(0).token_ids;
  r.sampling.n = 3;
  const std::vector<RequestOutput> out = RunSamples(*engine, r);
  ASSERT_EQ(out.size(), 3u);
  int finished_requests = 0;
  for (int32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out[i].index, i);
    EXPECT_EQ(out[i].token_ids, alone) << "sample " << i;
    EXPECT_TRUE(out[i].finished);
    EXPECT_EQ(out[i].finish_reason, FinishReason::kLength);
    finished_requests += out[i].request_finished;
  }
  EXPECT_EQ(finished_requests, 1);
  const RequestOutput& last =
      *std::find_if(out.begin(), out.end(), [](const RequestOutput& o) { return o.request_finished; });
  EXPECT_EQ(last.usage.prompt_tokens, 21);
  EXPECT_EQ(last.usage.completion_tokens, 3 * 6);
  EXPECT_EQ(engine->GetMetrics().requests_finished_length, 2);  // one per request
}

TEST(ParallelSamplingTest, SeededSamplesEqualSeparateRequestsWithDerivedSeeds) {
  EngineRequest r;
  r.prompt_token_ids = Prompt(18);
  r.sampling = Sampled(16);
  r.sampling.seed = 777;

  // Each sample alone, as an n = 1 request with the derived seed.
  auto alone_engine = MakeFixtureEngine("llama", Config());
  std::vector<std::vector<int32_t>> alone;
  for (int32_t i = 0; i < 4; ++i) {
    EngineRequest one = r;
    one.sampling.seed = SampleSeed(777, i);
    alone.push_back(RunAll(*alone_engine, {one}).at(0).token_ids);
  }
  EXPECT_EQ(std::set<std::vector<int32_t>>(alone.begin(), alone.end()).size(), 4u);

  // n = 4 among batch neighbours, with a pool small enough to preempt.
  EngineConfig c = Config();
  c.num_kv_blocks = kMaxModelLen / c.block_size + 1 + 8;
  auto engine = MakeFixtureEngine("llama", c);
  std::vector<std::shared_ptr<RequestStream>> neighbours;
  for (EngineRequest& n : RandomRequests(6, 256, kMaxModelLen, 11)) {
    n.sampling.temperature = 1.0f;
    auto s = engine->AddRequest(std::move(n));
    ASSERT_TRUE(s.ok()) << s.status();
    neighbours.push_back(*s);
  }
  EngineRequest group = r;
  group.sampling.n = 4;
  const std::vector<RequestOutput> out = RunSamples(*engine, group);
  ASSERT_EQ(out.size(), 4u);
  for (int32_t i = 0; i < 4; ++i) EXPECT_EQ(out[i].token_ids, alone[i]) << "sample " << i;
  for (auto& s : neighbours) EXPECT_TRUE(s->finished());
}

TEST(ParallelSamplingTest, UnseededSamplesDiffer) {
  auto engine = MakeFixtureEngine("llama", Config());
  EngineRequest r;
  r.prompt_token_ids = Prompt(10);
  r.sampling = Sampled(16);
  r.sampling.n = 4;
  const std::vector<RequestOutput> out = RunSamples(*engine, r);
  ASSERT_EQ(out.size(), 4u);
  std::set<std::vector<int32_t>> distinct;
  for (const RequestOutput& o : out) distinct.insert(o.token_ids);
  EXPECT_GT(distinct.size(), 1u);
}

TEST(ParallelSamplingTest, AbortEndsEverySample) {
  auto engine = MakeFixtureEngine("llama", Config());
  EngineRequest r;
  r.prompt_token_ids = Prompt(26);
  r.sampling = Greedy(30);
  r.sampling.n = 5;
  auto stream = engine->AddRequest(r);
  ASSERT_TRUE(stream.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(engine->Step());
  ASSERT_TRUE(engine->Abort((*stream)->request_id()));
  RunChecked(*engine);
  const std::vector<RequestOutput> out = FinishedOutputs(**stream);
  ASSERT_EQ(out.size(), 5u);
  for (const RequestOutput& o : out) {
    EXPECT_TRUE(o.finished);
    EXPECT_EQ(o.finish_reason, FinishReason::kAbort) << "sample " << o.index;
  }
  EXPECT_EQ(engine->GetMetrics().kv_blocks_used, 0);
  EXPECT_EQ(engine->GetMetrics().requests_finished_abort, 1);
  EXPECT_FALSE(engine->Abort((*stream)->request_id()));
}

// (n above max_num_samples is refused by the serving layer: tests/serving.)
TEST(ParallelSamplingTest, SamplesCountAgainstTheQueue) {
  EngineConfig c = Config();
  c.max_num_samples = 4;
  c.max_queued_requests = 6;
  auto engine = MakeFixtureEngine("llama", c);
  EngineRequest r;
  r.prompt_token_ids = Prompt(5);
  r.sampling = Greedy(2);
  r.sampling.n = 4;
  ASSERT_TRUE(engine->AddRequest(r).ok());
  auto full = engine->AddRequest(r);  // 4 + 4 samples > 6 queued
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), ::testing::HasSubstr("n=4"));
  RunChecked(*engine);
}

TEST(ParallelSamplingTest, RandomGroupsArrivalsAndAbortsKeepIntegrity) {
  EngineConfig c = Config();
  c.num_kv_blocks = kMaxModelLen / c.block_size + 1 + 10;
  c.max_num_batched_tokens = 24;
  c.max_num_seqs = 8;
  c.enable_prefix_caching = false;
  c.max_queued_requests = 0;  // a long queue on purpose
  auto engine = MakeFixtureEngine("llama", c);
  std::mt19937 rng(17);
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<int32_t> samples;
  for (int step = 0; step < 3000; ++step) {
    if (rng() % 4 == 0) {
      EngineRequest r = RandomRequests(1, 256, kMaxModelLen, rng()).at(0);
      r.sampling.n = 1 + static_cast<int32_t>(rng() % 4);
      r.priority = static_cast<int32_t>(rng() % 3);
      if (rng() % 2 == 0) r.sampling.temperature = 1.0f;
      samples.push_back(r.sampling.n);
      auto s = engine->AddRequest(std::move(r));
      ASSERT_TRUE(s.ok()) << s.status();
      streams.push_back(*s);
    }
    if (!streams.empty() && rng() % 9 == 0) {
      engine->Abort(streams[rng() % streams.size()]->request_id());
    }
    engine->Step();  // check_integrity_every_step: ref counts equal holders after every step
  }
  RunChecked(*engine);
  for (size_t i = 0; i < streams.size(); ++i) {
    ASSERT_TRUE(streams[i]->finished());
    const std::vector<RequestOutput> out = streams[i]->WaitForCompletions();
    ASSERT_EQ(static_cast<int32_t>(out.size()), samples[i]) << "request " << i;
    for (const RequestOutput& o : out) EXPECT_TRUE(o.finished);
  }
  const EngineMetrics m = engine->GetMetrics();
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_GT(m.num_preemptions, 0);
}

}  // namespace
}  // namespace moeserve::testing

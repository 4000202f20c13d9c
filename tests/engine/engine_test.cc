// Engine behaviour on the committed fixture models (no tokenizer: ids only): batched greedy output
// equals each request alone, under preemption and chunked prefill; seeded sampling; abort in every
// state; a front end's stop of one sample; admission control; prefix-cache hits; threaded use.
// (Request validation is the serving layer's: tests/serving.)

#include "server/engine/engine.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_test_util.h"

namespace moeserve::testing {
namespace {

constexpr int32_t kMaxModelLen = kFixtureMaxModelLen;

// Each request alone in a fresh engine.
std::vector<std::vector<int32_t>> RunEachAlone(const std::string& model, const std::vector<EngineRequest>& requests) {
  auto engine = MakeFixtureEngine(model, RoomyConfig());
  std::vector<std::vector<int32_t>> out;
  for (const EngineRequest& r : requests) {
    std::vector<RequestOutput> o = RunAll(*engine, {r});
    out.push_back(o.at(0).token_ids);
  }
  return out;
}

void ExpectSameTokens(const std::vector<RequestOutput>& got, const std::vector<std::vector<int32_t>>& want,
                      const std::vector<EngineRequest>& requests) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].token_ids, want[i]) << "request " << i;
    EXPECT_EQ(static_cast<int32_t>(got[i].token_ids.size()), requests[i].sampling.max_tokens);
    EXPECT_EQ(got[i].finish_reason, FinishReason::kLength);
    EXPECT_EQ(got[i].usage.completion_tokens, requests[i].sampling.max_tokens);
    EXPECT_EQ(got[i].usage.prompt_tokens, static_cast<int32_t>(requests[i].prompt_token_ids.size()));
  }
}

class BatchingTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchingTest, ThirtyTwoRequestsTogetherMatchEachAlone) {
  const auto requests = RandomRequests(32, 256, kMaxModelLen, 1);
  const auto alone = RunEachAlone(GetParam(), requests);
  auto engine = MakeFixtureEngine(GetParam(), RoomyConfig());
  ExpectSameTokens(RunAll(*engine, requests), alone, requests);
  EXPECT_EQ(engine->GetMetrics().kv_blocks_used, 0);
}

TEST_P(BatchingTest, TinyKvPoolPreemptsAndStillMatches) {
  const auto requests = RandomRequests(32, 256, kMaxModelLen, 2);
  const auto alone = RunEachAlone(GetParam(), requests);
  EngineConfig c = RoomyConfig();
  c.num_kv_blocks = kMaxModelLen / c.block_size + 1 + 4;  // one full request and a little more
  auto engine = MakeFixtureEngine(GetParam(), c);
  ExpectSameTokens(RunAll(*engine, requests), alone, requests);
  const EngineMetrics m = engine->GetMetrics();
  EXPECT_GT(m.num_preemptions, 5);
  EXPECT_EQ(m.kv_blocks_used, 0);
}

TEST_P(BatchingTest, ChunkedPrefillAtEveryBudgetMatches) {
  const auto requests = RandomRequests(8, 256, kMaxModelLen, 3);
  const auto alone = RunEachAlone(GetParam(), requests);
  for (int32_t budget : {4, 5, 7, 8, 9, 15, 16, 17, 31}) {
    SCOPED_TRACE(budget);
    EngineConfig c = RoomyConfig();
    c.max_num_seqs = 4;
    c.max_num_batched_tokens = budget;
    auto engine = MakeFixtureEngine(GetParam(), c);
    ExpectSameTokens(RunAll(*engine, requests), alone, requests);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatchingTest, ::testing::Values("llama", "deepseek_v3", "mixtral", "qwen2"));

TEST(EngineTest, CreateRefusesAKvPoolTooSmallForOneRequest) {
  auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
  ASSERT_TRUE(backend.ok());
  auto model = LoadModel((moeserve::testing::FixturesDir() / "models" / "llama").string(), backend->get());
  ASSERT_TRUE(model.ok());
  EngineConfig c = RoomyConfig();
  c.num_kv_blocks = 4;  // 3 usable blocks of 4 tokens < max_model_len 64
  auto engine = Engine::Create(c, {.backend = std::move(*backend), .model = std::move(*model)});
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, SeededSamplingIgnoresBatchNeighbours) {
  EngineRequest seeded;
  seeded.prompt_token_ids = {5, 17, 42, 99, 7};
  seeded.sampling.temperature = 0.9f;
  seeded.sampling.top_p = 0.95f;
  seeded.sampling.seed = 1234;
  seeded.sampling.max_tokens = 24;
  seeded.sampling.ignore_eos = true;

  auto alone_engine = MakeFixtureEngine("llama", RoomyConfig());
  const std::vector<int32_t> alone = RunAll(*alone_engine, {seeded}).at(0).token_ids;
  ASSERT_EQ(alone.size(), 24u);

  std::vector<EngineRequest> batch = RandomRequests(12, 256, kMaxModelLen, 4);
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].sampling.temperature = 1.0f;  // unseeded and differently seeded neighbours
    if (i % 2 == 0) batch[i].sampling.seed = i;
  }
  batch.insert(batch.begin() + 5, seeded);
  EngineConfig c = RoomyConfig();
  c.num_kv_blocks = kMaxModelLen / c.block_size + 1 + 6;  // with preemption, too
  auto engine = MakeFixtureEngine("llama", c);
  EXPECT_EQ(RunAll(*engine, batch).at(5).token_ids, alone);
}

TEST(EngineTest, LogprobsComeWithEveryToken) {
  auto engine = MakeFixtureEngine("llama", RoomyConfig());
  EngineRequest r;
  r.prompt_token_ids = {1, 2, 3, 4};
  r.sampling = Greedy(6);
  r.sampling.logprobs = 3;
  const RequestOutput out = RunAll(*engine, {r}).at(0);
  ASSERT_EQ(out.logprobs.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(out.logprobs[i].token_id, out.token_ids[i]);
    ASSERT_EQ(out.logprobs[i].top.size(), 3u);
    EXPECT_EQ(out.logprobs[i].top[0].token_id, out.token_ids[i]);  // greedy = most likely
    EXPECT_FLOAT_EQ(out.logprobs[i].top[0].logprob, out.logprobs[i].logprob);
    EXPECT_LE(out.logprobs[i].logprob, 0.0f);
  }
}

TEST(EngineTest, StopTokenIdFinishesWithStop) {
  auto engine = MakeFixtureEngine("llama", RoomyConfig());
  EngineRequest r;
  r.prompt_token_ids = {9, 8, 7, 6, 5};
  r.sampling = Greedy(10);
  const std::vector<int32_t> full = RunAll(*engine, {r}).at(0).token_ids;
  ASSERT_EQ(full.size(), 10u);
  const auto first = std::find(full.begin(), full.end(), full[3]);
  r.sampling.stop_token_ids = {full[3]};
  const RequestOutput out = RunAll(*engine, {r}).at(0);
  EXPECT_EQ(out.finish_reason, FinishReason::kStop);
  EXPECT_EQ(out.stop_token_id, full[3]);
  EXPECT_EQ(out.token_ids, std::vector<int32_t>(full.begin(), first + 1));
}

TEST(EngineTest, RepeatedPromptHitsThePrefixCache) {
  auto engine = MakeFixtureEngine("deepseek_v3", RoomyConfig());
  EngineRequest r;
  for (int i = 0; i < 40; ++i) r.prompt_token_ids.push_back(3 + (i * 37) % 250);
  r.sampling = Greedy(8);
  const RequestOutput first = RunAll(*engine, {r}).at(0);
  EXPECT_EQ(first.usage.cached_tokens, 0);
  const RequestOutput second = RunAll(*engine, {r}).at(0);
  EXPECT_EQ(second.usage.cached_tokens, 36);  // full blocks of 4, never the last prompt token
  EXPECT_EQ(second.token_ids, first.token_ids);
  const EngineMetrics m = engine->GetMetrics();
  EXPECT_EQ(m.prefix_hit_tokens, 36);
  EXPECT_GT(m.prefix_hit_rate, 0.0);
  // A different salt does not share the cache.
  r.cache_salt = "tenant-b";
  EXPECT_EQ(RunAll(*engine, {r}).at(0).usage.cached_tokens, 0);
}

TEST(EngineTest, AdmissionLimitIsResourceExhausted) {
  EngineConfig c = RoomyConfig();
  c.max_queued_requests = 2;
  auto engine = MakeFixtureEngine("llama", c);
  EngineRequest r;
  r.prompt_token_ids = {1, 2, 3};
  r.sampling = Greedy(2);
  ASSERT_TRUE(engine->AddRequest(r).ok());
  ASSERT_TRUE(engine->AddRequest(r).ok());
  auto refused = engine->AddRequest(r);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("max_queued_requests"));
  EXPECT_EQ(engine->GetMetrics().requests_refused, 1);
  RunChecked(*engine);
  EXPECT_TRUE(engine->AddRequest(r).ok());  // room again once they ran
  RunChecked(*engine);
}

TEST(EngineTest, DefaultQueueIsBoundedByRunningCapacity) {
  EngineConfig c = RoomyConfig();  // max_num_seqs 64, 1023 usable blocks: 128 may wait
  c.max_num_seqs = 3;              // now min(3, 1023) = 3 run at once: 6 may wait
  c.max_num_samples = 4;           // (and at least one request of 4 samples)
  ASSERT_EQ(c.max_queued_requests, EngineConfig::kAutoQueueLimit);
  auto engine = MakeFixtureEngine("llama", c);
  EngineRequest r;
  r.prompt_token_ids = {1, 2, 3};
  r.sampling = Greedy(2);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(engine->AddRequest(r).ok()) << i;
  auto refused = engine->AddRequest(r);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("max_queued_requests is 6"));
  EXPECT_EQ(engine->GetMetrics().requests_refused, 1);
  RunChecked(*engine);
  const EngineMetrics m = engine->GetMetrics();
  EXPECT_EQ(m.requests_finished_length, 6);
  EXPECT_EQ(m.requests_finished_error, 0);
}

TEST(EngineTest, ARequestWaitingLongerThanMaxQueueTimeIsRefused) {
  EngineConfig c = RoomyConfig();
  c.max_num_seqs = 1;  // one runs, the other waits
  c.max_queue_time_seconds = 0.2;
  auto engine = MakeFixtureEngine("llama", c);
  EngineRequest r;
  r.prompt_token_ids = {1, 2, 3};
  r.sampling = Greedy(8);
  auto running = engine->AddRequest(r);
  ASSERT_TRUE(running.ok());
  ASSERT_TRUE(engine->Step());  // schedules the first: started, never refused for its wait
  auto waiting = engine->AddRequest(r);
  ASSERT_TRUE(waiting.ok());
  absl::SleepFor(absl::Milliseconds(300));
  RunChecked(*engine);
  const RequestOutput refused = FinishedOutput(**waiting);
  EXPECT_EQ(refused.finish_reason, FinishReason::kError);
  EXPECT_EQ(refused.error.code(), absl::StatusCode::kResourceExhausted) << refused.error;
  EXPECT_THAT(refused.error.message(), ::testing::HasSubstr("max_queue_time"));
  EXPECT_TRUE(refused.token_ids.empty());
  const RequestOutput done = FinishedOutput(**running);
  EXPECT_EQ(done.finish_reason, FinishReason::kLength);
  const EngineMetrics m = engine->GetMetrics();
  EXPECT_EQ(m.requests_refused, 1);
  EXPECT_EQ(m.requests_finished_error, 0);  // a refusal, not an engine error
  EXPECT_EQ(m.kv_blocks_used, 0);
}

TEST(EngineTest, NegativeQueueLimitsAreRefused) {
  EngineConfig c = RoomyConfig();
  c.max_queue_time_seconds = -1;
  auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
  ASSERT_TRUE(backend.ok());
  auto model = LoadModel((FixturesDir() / "models" / "llama").string(), backend->get());
  ASSERT_TRUE(model.ok());
  auto engine = Engine::Create(c, EngineParts{.backend = std::move(*backend), .model = std::move(*model)});
  ASSERT_FALSE(engine.ok());
  EXPECT_THAT(engine.status().message(), ::testing::HasSubstr("max_queue_time_seconds"));
}

class AbortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineConfig c = RoomyConfig();
    c.max_num_seqs = 2;
    c.max_num_batched_tokens = 8;  // a 30-token prompt takes several chunks
    engine_ = MakeFixtureEngine("llama", c);
  }
  std::shared_ptr<RequestStream> Add(int32_t prompt_len, int32_t max_tokens) {
    EngineRequest r;
    for (int i = 0; i < prompt_len; ++i) r.prompt_token_ids.push_back(10 + i);
    r.sampling = Greedy(max_tokens);
    auto s = engine_->AddRequest(std::move(r));
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }
  void StepChecked(int n) {
    for (int i = 0; i < n; ++i) {
      engine_->Step();
      ASSERT_TRUE(engine_->CheckIntegrity().ok()) << engine_->CheckIntegrity();
    }
  }
  void ExpectAborted(const std::shared_ptr<RequestStream>& s) {
    RequestOutput out = FinishedOutput(*s);
    EXPECT_EQ(out.finish_reason, FinishReason::kAbort);
    EXPECT_FALSE(engine_->Abort(s->request_id()));  // finished: unknown now
  }
  std::unique_ptr<Engine> engine_;
};

TEST_F(AbortTest, BeforeTheEngineSawIt) {
  auto s = Add(5, 4);
  EXPECT_TRUE(engine_->Abort(s->request_id()));
  StepChecked(1);
  ExpectAborted(s);
  EXPECT_EQ(engine_->GetMetrics().requests_finished_abort, 1);
}

TEST_F(AbortTest, WhileQueued) {
  auto a = Add(3, 20), b = Add(3, 20), queued = Add(3, 20);  // max_num_seqs = 2
  StepChecked(2);
  EXPECT_EQ(engine_->GetMetrics().num_waiting, 1);
  EXPECT_TRUE(engine_->Abort(queued->request_id()));
  StepChecked(1);
  ExpectAborted(queued);
  EXPECT_EQ(engine_->GetMetrics().num_waiting, 0);
  RunChecked(*engine_);
  EXPECT_EQ(FinishedOutput(*a).token_ids.size(), 20u);
  EXPECT_EQ(FinishedOutput(*b).token_ids.size(), 20u);
}

TEST_F(AbortTest, MidPrefill) {
  auto s = Add(30, 4);
  StepChecked(2);  // 16 of 30 prompt tokens computed
  EXPECT_GT(engine_->GetMetrics().kv_blocks_used, 0);
  EXPECT_TRUE(engine_->Abort(s->request_id()));
  StepChecked(1);
  ExpectAborted(s);
  EXPECT_TRUE(FinishedOutput(*s).token_ids.empty());
  EXPECT_EQ(engine_->GetMetrics().kv_blocks_used, 0);  // freed within one step
}

TEST_F(AbortTest, WhileDecodingKeepsTheTokensSoFar) {
  auto s = Add(4, 30);
  StepChecked(4);
  auto partial = s->Next(absl::ZeroDuration());
  ASSERT_TRUE(partial.has_value());
  EXPECT_EQ(partial->token_ids.size(), 4u);
  EXPECT_TRUE(engine_->Abort(s->request_id()));
  StepChecked(1);
  auto rest = s->Next(absl::ZeroDuration());
  ASSERT_TRUE(rest.has_value());
  EXPECT_TRUE(rest->finished);
  EXPECT_EQ(rest->finish_reason, FinishReason::kAbort);
  EXPECT_EQ(rest->usage.completion_tokens, 4);
  EXPECT_FALSE(s->Next(absl::ZeroDuration()).has_value());  // nothing after the final delta
  EXPECT_EQ(engine_->GetMetrics().kv_blocks_used, 0);
}

TEST_F(AbortTest, OnItsFinalStep) {
  auto s = Add(4, 3);
  StepChecked(2);  // two tokens; the next step would sample the last one
  EXPECT_TRUE(engine_->Abort(s->request_id()));
  StepChecked(1);
  RequestOutput out = FinishedOutput(*s);
  EXPECT_EQ(out.finish_reason, FinishReason::kAbort);
  EXPECT_EQ(out.token_ids.size(), 2u);
  EXPECT_EQ(engine_->GetMetrics().kv_blocks_used, 0);
}

TEST_F(AbortTest, CancellationProbeAbortsBeforeTheNextStep) {
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  EngineRequest r;
  r.prompt_token_ids = {10, 11, 12, 13};
  r.sampling = Greedy(30);
  r.is_cancelled = [cancelled] { return cancelled->load(); };
  auto added = engine_->AddRequest(std::move(r));
  ASSERT_TRUE(added.ok()) << added.status();
  auto s = *added;
  StepChecked(3);
  auto partial = s->Next(absl::ZeroDuration());
  ASSERT_TRUE(partial.has_value());
  EXPECT_EQ(partial->token_ids.size(), 3u);
  cancelled->store(true);  // no Abort() call: the engine finds out by itself
  StepChecked(1);
  RequestOutput rest = FinishedOutput(*s);
  EXPECT_EQ(rest.finish_reason, FinishReason::kAbort);
  EXPECT_TRUE(rest.token_ids.empty());  // aborted before the step ran: no new token
  EXPECT_EQ(rest.usage.completion_tokens, 3);
  EXPECT_EQ(engine_->GetMetrics().kv_blocks_used, 0);
}

TEST_F(AbortTest, UnknownIdIsRefused) {
  EXPECT_FALSE(engine_->Abort(12345));
  EXPECT_FALSE(engine_->StopSample(12345, 0));
}

// A stop string found by the serving layer stops one sample; the others run on.
TEST_F(AbortTest, StopSampleFinishesOneSampleWithStop) {
  EngineRequest r;
  r.prompt_token_ids = {5, 6, 7};
  r.sampling = Greedy(12);
  r.sampling.n = 2;
  auto s = engine_->AddRequest(std::move(r));
  ASSERT_TRUE(s.ok()) << s.status();
  StepChecked(3);
  EXPECT_TRUE(engine_->StopSample((*s)->request_id(), 1));
  StepChecked(1);
  RunChecked(*engine_);
  const std::vector<RequestOutput> out = (*s)->WaitForCompletions();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].finish_reason, FinishReason::kLength);
  EXPECT_EQ(out[0].token_ids.size(), 12u);
  EXPECT_EQ(out[1].finish_reason, FinishReason::kStop);
  EXPECT_EQ(out[1].stop_token_id, -1);  // not an id: the caller's stop
  EXPECT_LT(out[1].token_ids.size(), 12u);
  EXPECT_EQ(out[1].token_ids,
            std::vector<int32_t>(out[0].token_ids.begin(), out[0].token_ids.begin() + out[1].token_ids.size()));
  const EngineMetrics m = engine_->GetMetrics();
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_EQ(m.requests_finished_length, 1);                  // counted by the request's last sample
  EXPECT_FALSE(engine_->StopSample((*s)->request_id(), 0));  // finished: unknown now
}

TEST_F(AbortTest, StopAbortsEverythingLive) {
  auto a = Add(4, 30), b = Add(30, 4), c = Add(3, 3);
  StepChecked(2);
  auto d = Add(3, 3);
  engine_->Stop();
  for (auto& s : {a, b, c, d}) EXPECT_EQ(FinishedOutput(*s).finish_reason, FinishReason::kAbort);
  EXPECT_EQ(engine_->GetMetrics().kv_blocks_used, 0);
  EngineRequest r;
  r.prompt_token_ids = {1};
  EXPECT_EQ(engine_->AddRequest(r).status().code(), absl::StatusCode::kUnavailable);
}

TEST(EngineTest, RandomArrivalsAndAbortsKeepIntegrity) {
  EngineConfig c = RoomyConfig();
  c.num_kv_blocks = kMaxModelLen / c.block_size + 1 + 8;
  c.max_num_batched_tokens = 24;
  c.max_num_seqs = 8;
  c.max_queued_requests = 0;  // a long queue on purpose
  auto engine = MakeFixtureEngine("llama", c);
  std::mt19937 rng(7);
  std::vector<std::shared_ptr<RequestStream>> streams;
  int added = 0;
  for (int step = 0; step < 10000; ++step) {
    if (rng() % 3 == 0) {
      EngineRequest r = RandomRequests(1, 256, kMaxModelLen, rng()).at(0);
      r.priority = static_cast<int32_t>(rng() % 3);
      if (rng() % 4 == 0) r.sampling.temperature = 1.0f;
      auto s = engine->AddRequest(std::move(r));
      ASSERT_TRUE(s.ok()) << s.status();
      streams.push_back(*s);
      ++added;
    }
    if (!streams.empty() && rng() % 7 == 0) {
      engine->Abort(streams[rng() % streams.size()]->request_id());
    }
    engine->Step();
    ASSERT_TRUE(engine->CheckIntegrity().ok()) << "step " << step << ": " << engine->CheckIntegrity();
  }
  RunChecked(*engine);
  int finished = 0;
  for (auto& s : streams) finished += s->finished();
  EXPECT_EQ(finished, added);
  const EngineMetrics m = engine->GetMetrics();
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_EQ(m.num_running + m.num_waiting, 0);
  EXPECT_EQ(m.requests_finished_length + m.requests_finished_abort + m.requests_finished_stop, added);
  EXPECT_GT(m.num_preemptions, 0);
}

TEST(EngineThreadTest, ConcurrentClientsGetTheirAloneOutputs) {
  const auto requests = RandomRequests(24, 256, kMaxModelLen, 5);
  const auto alone = RunEachAlone("llama", requests);
  EngineConfig c = RoomyConfig();
  c.check_integrity_every_step = true;
  c.num_kv_blocks = kMaxModelLen / c.block_size + 1 + 10;
  auto engine = MakeFixtureEngine("llama", c);
  engine->Start();
  std::vector<std::vector<int32_t>> got(requests.size());
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      for (size_t i = t; i < requests.size(); i += 4) {
        auto s = engine->AddRequest(requests[i]);
        ASSERT_TRUE(s.ok()) << s.status();
        while (auto delta = (*s)->Next(absl::Seconds(30))) {
          got[i].insert(got[i].end(), delta->token_ids.begin(), delta->token_ids.end());
          if (delta->finished) break;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(got[i], alone[i]) << "request " << i;
  engine->Stop();
  EXPECT_EQ(engine->GetMetrics().kv_blocks_used, 0);
}

TEST(EngineThreadTest, CallbackStreamsAndAbortFromAnotherThread) {
  auto engine = MakeFixtureEngine("llama", RoomyConfig());
  engine->Start();
  absl::Mutex mu;
  std::vector<int32_t> tokens;
  bool done = false;
  bool abort_sent = false;
  FinishReason reason = FinishReason::kNone;
  RequestTimings timings;
  EngineRequest r;
  r.prompt_token_ids = {3, 4, 5};
  r.sampling = Greedy(60);
  r.on_output = [&](const RequestOutput& delta) {
    absl::MutexLock lock(&mu);
    tokens.insert(tokens.end(), delta.token_ids.begin(), delta.token_ids.end());
    if (delta.finished) {
      done = true;
      reason = delta.finish_reason;
      timings = delta.timings;
    } else if (tokens.size() >= 2) {
      // Hold the engine thread until the other thread has called Abort, so the tiny model
      // cannot finish all its tokens first (the race this test is not about).
      mu.Await(absl::Condition(&abort_sent));
    }
  };
  auto s = engine->AddRequest(std::move(r));
  ASSERT_TRUE(s.ok());
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](std::vector<int32_t>* t) { return t->size() >= 2; }, &tokens));
  }
  EXPECT_TRUE(engine->Abort((*s)->request_id()));
  absl::MutexLock lock(&mu);
  abort_sent = true;
  mu.Await(absl::Condition(&done));
  EXPECT_EQ(reason, FinishReason::kAbort);
  EXPECT_LT(tokens.size(), 60u);
  EXPECT_LE(timings.arrival, timings.first_scheduled);
  EXPECT_LE(timings.first_scheduled, timings.first_token);
  EXPECT_LE(timings.first_token, timings.finish);
}

}  // namespace
}  // namespace moeserve::testing

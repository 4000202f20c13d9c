// The serving layer over real engines: one validation naming the client's fields, prompts from
// text, ids or messages, text output equal to the decoded ids, stop strings that stop the engine
// sample (blocks freed, later tokens dropped), usage of what was delivered, and a dropped Call
// aborting its request.

#include "server/serving/frontend.h"

#include <map>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_test_util.h"
#include "tests/stories260k_util.h"

namespace moeserve::serving {
namespace {

using ::moeserve::testing::Greedy;
using ::testing::HasSubstr;

// Every output of a call, merged per completion; the last delta of the request last.
struct Collected {
  std::map<int32_t, Output> by_index;
  Output last;
  int deltas = 0;
};

Collected Collect(Call& call) {
  Collected c;
  while (std::optional<Output> out = call.Next(absl::Seconds(30))) {
    ++c.deltas;
    Output& merged = c.by_index[out->index];
    merged.index = out->index;
    merged.text += out->text;
    merged.token_ids.insert(merged.token_ids.end(), out->token_ids.begin(), out->token_ids.end());
    merged.finished = out->finished;
    merged.finish_reason = out->finish_reason;
    merged.stop_string = out->stop_string;
    c.last = *out;
    if (out->request_finished) break;
  }
  return c;
}

// Waits until the engine has released every block (it frees them at the end of the step after
// the request's end).
EngineMetrics WaitForNoBlocks(Engine& engine) {
  EngineMetrics m;
  for (int i = 0; i < 500; ++i) {
    m = engine.GetMetrics();
    if (m.kv_blocks_used == 0 && m.num_running == 0 && m.num_waiting == 0) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return m;
}

TEST(FrontendValidationTest, InvalidRequestsNameTheField) {
  auto engine = moeserve::testing::MakeFixtureEngine("llama", moeserve::testing::RoomyConfig());
  Frontend frontend(engine.get(), {});
  auto submit = [&](std::vector<int32_t> prompt, SamplingParams p) {
    ServingRequest r;
    r.prompt = TokenPrompt{std::move(prompt)};
    r.sampling = p;
    return frontend.Submit(std::move(r)).status();
  };
  EXPECT_THAT(submit({}, Greedy(4)).message(), HasSubstr("prompt_token_ids"));
  EXPECT_THAT(submit({1, 256}, Greedy(4)).message(), HasSubstr("prompt_token_ids[1]"));
  EXPECT_THAT(submit({1, -1}, Greedy(4)).message(), HasSubstr("prompt_token_ids[1]"));
  EXPECT_THAT(submit({1, 2}, Greedy(63)).message(), HasSubstr("max_tokens"));
  EXPECT_EQ(submit(std::vector<int32_t>(64, 5), Greedy(1)).code(), absl::StatusCode::kInvalidArgument);
  SamplingParams bad = Greedy(4);
  bad.temperature = -1.0f;
  EXPECT_THAT(submit({1, 2}, bad).message(), HasSubstr("temperature"));
  EXPECT_EQ(ErrorField(submit({1, 2}, bad)), "temperature");
  SamplingParams stop = Greedy(4);
  stop.stop = {"x"};
  const absl::Status no_tokenizer = submit({1, 2}, stop);
  EXPECT_EQ(no_tokenizer.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_tokenizer.message(), HasSubstr("stop"));
  ServingRequest text;
  text.prompt = TextPrompt{"hello"};
  text.names.prompt = "prompt";
  EXPECT_EQ(frontend.Submit(text).status().code(), absl::StatusCode::kFailedPrecondition);
  ServingRequest salted;
  salted.prompt = TokenPrompt{{1, 2}};
  salted.cache_salt = std::string(300, 's');
  EXPECT_THAT(frontend.Submit(salted).status().message(), HasSubstr("cache_salt"));
  // None reached the engine; all count as refused.
  EXPECT_EQ(engine->GetMetrics().requests_added, 0);
  EXPECT_EQ(frontend.GetMetrics().requests_refused, 10);
  ASSERT_TRUE(submit({1, 2}, Greedy(62)).ok());
}

TEST(FrontendValidationTest, NIsLimitedByMaxNumSamples) {
  EngineConfig c = moeserve::testing::RoomyConfig();
  c.max_num_samples = 4;
  auto engine = moeserve::testing::MakeFixtureEngine("llama", c);
  Frontend frontend(engine.get(), {});
  ServingRequest r;
  r.prompt = TokenPrompt{{1, 2, 3, 4, 5}};
  r.sampling = Greedy(2);
  r.sampling.n = 5;
  const absl::Status refused = frontend.Submit(r).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(), "n must be in [1, 4] (max_num_samples), got 5");
  r.sampling.n = 4;
  EXPECT_TRUE(frontend.Submit(r).ok());
}

TEST(FrontendValidationTest, DrainingRefusesAndKeysAreChecked) {
  auto engine = moeserve::testing::MakeFixtureEngine("llama", moeserve::testing::RoomyConfig());
  Frontend frontend(engine.get(), {.api_keys = ApiKeys({"k"})});
  const std::string_view good = "Bearer k", bad = "Bearer x";
  EXPECT_TRUE(frontend.Admit(&good).ok());
  EXPECT_EQ(frontend.Admit(&bad).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(frontend.Admit(nullptr).code(), absl::StatusCode::kUnauthenticated);
  frontend.StartDraining();
  EXPECT_EQ(frontend.Admit(&good).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(frontend.Authenticate(&good).ok());
  ServingRequest r;
  r.prompt = TokenPrompt{{1, 2}};
  EXPECT_EQ(frontend.Submit(r).status().code(), absl::StatusCode::kUnavailable);
}

// An engine (not started) over the committed default model, which has a tokenizer.
std::unique_ptr<Engine> DefaultModelEngine() {
  EngineConfig c;
  c.model_dir = MOESERVE_SOURCE_DIR "/models/default";
  c.num_threads = 1;
  c.max_model_len = 128;
  auto engine = Engine::Create(c);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

class DefaultModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = DefaultModelEngine();
    ASSERT_NE(engine_, nullptr);
    engine_->Start();
    frontend_ = std::make_unique<Frontend>(engine_.get(), FrontendOptions{});
  }

  ServingRequest Text(const std::string& text, int32_t max_tokens) {
    ServingRequest r;
    r.prompt = TextPrompt{text};
    r.sampling = Greedy(max_tokens);
    return r;
  }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Frontend> frontend_;
};

TEST_F(DefaultModelTest, TextIsTheDecodedCompletion) {
  auto call = frontend_->Submit(Text("Once upon a time", 40));
  ASSERT_TRUE(call.ok()) << call.status();
  const Collected got = Collect(**call);
  const Output& out = got.by_index.at(0);
  EXPECT_EQ(out.token_ids.size(), 40u);
  EXPECT_EQ(got.last.finish_reason, FinishReason::kLength);
  EXPECT_TRUE(got.last.request_finished);
  EXPECT_EQ(got.last.usage.completion_tokens, 40);
  EXPECT_EQ(got.last.usage.prompt_tokens, static_cast<int32_t>((*call)->prompt_token_ids().size()));
  std::vector<int32_t> all = (*call)->prompt_token_ids();
  all.insert(all.end(), out.token_ids.begin(), out.token_ids.end());
  const Tokenizer* tok = engine_->tokenizer();
  EXPECT_EQ(*tok->Decode((*call)->prompt_token_ids(), true) + out.text, *tok->Decode(all, true));
  EXPECT_FALSE((*call)->Next(absl::ZeroDuration()).has_value());  // after the last delta
}

TEST_F(DefaultModelTest, StopStringStopsTheEngineSampleAndCountsDeliveredTokens) {
  // The free-running greedy text, then a stop string from its middle.
  auto free_call = frontend_->Submit(Text("Once upon a time", 60));
  ASSERT_TRUE(free_call.ok());
  const std::string free_text = Collect(**free_call).by_index.at(0).text;
  ASSERT_GT(free_text.size(), 40u) << free_text;
  const std::string stop = free_text.substr(20, 6);
  const std::string want = free_text.substr(0, free_text.find(stop));

  ServingRequest r = Text("Once upon a time", 60);
  r.sampling.stop = {stop};
  auto call = frontend_->Submit(std::move(r));
  ASSERT_TRUE(call.ok());
  const Collected got = Collect(**call);
  EXPECT_EQ(got.by_index.at(0).text, want);
  EXPECT_EQ(got.last.finish_reason, FinishReason::kStop);
  EXPECT_EQ(got.last.stop_string, stop);
  const int32_t delivered = static_cast<int32_t>(got.by_index.at(0).token_ids.size());
  EXPECT_LT(delivered, 60);
  EXPECT_EQ(got.last.usage.completion_tokens, delivered);
  // No blocks held. (The engine may have run to max_tokens before it learnt of the stop: the
  // stepped test below pins the engine side down.)
  const EngineMetrics m = WaitForNoBlocks(*engine_);
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_EQ(m.requests_finished_stop + m.requests_finished_length, 2);
}

// Stepped by hand and read after every step: the stop string is found off the engine thread right
// after the step that completed it, and the engine stops the sample at its next step boundary
// without generating anything more.
TEST(FrontendStepTest, StopStringStopsTheEngineSampleAtTheNextStep) {
  std::unique_ptr<Engine> engine = DefaultModelEngine();
  ASSERT_NE(engine, nullptr);
  Frontend frontend(engine.get(), {});
  auto run = [&](std::vector<std::string> stop) {
    ServingRequest r;
    r.prompt = TextPrompt{"Once upon a time"};
    r.sampling = Greedy(60);
    r.sampling.stop = std::move(stop);
    auto call = frontend.Submit(std::move(r));
    EXPECT_TRUE(call.ok()) << call.status();
    Output merged;
    while (engine->Step()) {
      while (auto out = (*call)->Next(absl::ZeroDuration())) {
        merged.text += out->text;
        merged.token_ids.insert(merged.token_ids.end(), out->token_ids.begin(), out->token_ids.end());
        merged.finish_reason = out->finish_reason;
        merged.usage = out->usage;
      }
    }
    EXPECT_TRUE((*call)->finished());
    return merged;
  };
  const Output free = run({});
  ASSERT_GT(free.text.size(), 40u);
  const EngineMetrics before = engine->GetMetrics();
  const std::string stop = free.text.substr(20, 6);
  const Output stopped = run({stop});
  EXPECT_EQ(stopped.finish_reason, FinishReason::kStop);
  EXPECT_EQ(stopped.text, free.text.substr(0, free.text.find(stop)));
  const EngineMetrics after = engine->GetMetrics();
  EXPECT_EQ(after.requests_finished_stop, 1);
  EXPECT_EQ(after.kv_blocks_used, 0);
  // Not one token past the stop string was generated.
  EXPECT_EQ(after.generation_tokens - before.generation_tokens, static_cast<int64_t>(stopped.token_ids.size()));
  EXPECT_EQ(stopped.usage.completion_tokens, static_cast<int32_t>(stopped.token_ids.size()));
}

TEST_F(DefaultModelTest, ParallelSamplesStopIndependently) {
  ServingRequest r = Text("Once upon a time", 30);
  r.sampling.n = 3;
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 7;
  ServingRequest free_run = r;
  auto free_call = frontend_->Submit(std::move(free_run));
  ASSERT_TRUE(free_call.ok());
  const Collected free = Collect(**free_call);
  ASSERT_EQ(free.by_index.size(), 3u);
  // A stop string from sample 1's text; the seeded samples repeat, so it stops there again.
  const std::string text1 = free.by_index.at(1).text;
  ASSERT_GT(text1.size(), 12u);
  const std::string stop = text1.substr(6, 5);
  r.sampling.stop = {stop};
  auto call = frontend_->Submit(std::move(r));
  ASSERT_TRUE(call.ok());
  const Collected got = Collect(**call);
  ASSERT_EQ(got.by_index.size(), 3u);
  int32_t tokens = 0;
  for (const auto& [index, out] : got.by_index) {
    EXPECT_TRUE(out.finished) << index;
    const std::string& full = free.by_index.at(index).text;
    const size_t at = full.find(stop);
    EXPECT_EQ(out.text, full.substr(0, at)) << index;
    EXPECT_EQ(out.finish_reason, at == std::string::npos ? FinishReason::kLength : FinishReason::kStop) << index;
    tokens += static_cast<int32_t>(out.token_ids.size());
  }
  EXPECT_EQ(got.by_index.at(1).finish_reason, FinishReason::kStop);
  EXPECT_EQ(got.last.usage.completion_tokens, tokens);
  EXPECT_EQ(WaitForNoBlocks(*engine_).kv_blocks_used, 0);
}

// Driven step by step, so the request cannot finish on its own first.
TEST(FrontendCallTest, DroppingACallAbortsItsRequest) {
  auto engine = moeserve::testing::MakeFixtureEngine("llama", moeserve::testing::RoomyConfig());
  Frontend frontend(engine.get(), {});
  ServingRequest r;
  r.prompt = TokenPrompt{{1, 2, 3}};
  r.sampling = Greedy(40);
  auto call = frontend.Submit(std::move(r));
  ASSERT_TRUE(call.ok());
  for (int i = 0; i < 3; ++i) engine->Step();
  std::optional<Output> out = (*call)->Next(absl::ZeroDuration());
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->token_ids.size(), 3u);
  call->reset();
  moeserve::testing::RunChecked(*engine);
  const EngineMetrics m = engine->GetMetrics();
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_EQ(m.requests_finished_abort, 1);
  EXPECT_LT(m.generation_tokens, 40);
}

TEST_F(DefaultModelTest, OnOutputIsToldAndNextDoesNotBlockWithZeroTimeout) {
  std::atomic<int> told{0};
  ServingRequest r = Text("Once", 5);
  r.on_output = [&told] { told.fetch_add(1); };
  auto call = frontend_->Submit(std::move(r));
  ASSERT_TRUE(call.ok());
  ASSERT_TRUE((*call)->WaitForEngine(absl::Seconds(30)));
  EXPECT_GE(told.load(), 1);
  int32_t tokens = 0;
  while (auto out = (*call)->Next(absl::ZeroDuration())) tokens += out->token_ids.size();
  EXPECT_EQ(tokens, 5);
  EXPECT_TRUE((*call)->finished());
}

// stories260K writes its reference story from BOS; a stop string cuts it (moved here from the
// engine tests with the stop strings themselves).
TEST(Stories260kFrontendTest, ReferenceStoryAndStopString) {
  const std::string dir = moeserve::testing::Stories260kDir();
  if (dir.empty()) GTEST_SKIP() << "shared data models/stories260K not found (set MOESERVE_TEST_DATA)";
  EngineConfig c;
  c.model_dir = dir;
  c.num_threads = 1;
  c.kv_cache_memory_bytes = 4 << 20;
  auto engine = Engine::Create(c);
  ASSERT_TRUE(engine.ok()) << engine.status();
  (*engine)->Start();
  Frontend frontend(engine->get(), {});
  ServingRequest r;
  r.prompt = TokenPrompt{{1}};
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = 80;
  auto call = frontend.Submit(r);
  ASSERT_TRUE(call.ok());
  const Output out = Collect(**call).by_index.at(0);
  const std::string story = moeserve::testing::kStories260kReferenceStory;
  EXPECT_EQ(out.text.substr(0, story.size()), story) << out.text;
  EXPECT_EQ(out.text, *(*engine)->tokenizer()->Decode(out.token_ids, true));

  r.sampling.stop = {"red ball", "never appears"};
  auto stopped_call = frontend.Submit(r);
  ASSERT_TRUE(stopped_call.ok());
  const Collected stopped = Collect(**stopped_call);
  EXPECT_EQ(stopped.last.finish_reason, FinishReason::kStop);
  EXPECT_EQ(stopped.last.stop_string, "red ball");
  EXPECT_EQ(stopped.by_index.at(0).text, story.substr(0, story.find("red ball")));
  EXPECT_LT(stopped.by_index.at(0).token_ids.size(), 60u);
  EXPECT_EQ(WaitForNoBlocks(**engine).kv_blocks_used, 0);
}

}  // namespace
}  // namespace moeserve::serving

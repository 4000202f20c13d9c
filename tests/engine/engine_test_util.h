#ifndef MOESERVE_TESTS_ENGINE_ENGINE_TEST_UTIL_H_
#define MOESERVE_TESTS_ENGINE_ENGINE_TEST_UTIL_H_

// Helpers shared by the engine tests: engines over the committed fixture models, and a driver
// that steps an engine from the test thread, checking integrity after every step.

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/engine/engine.h"
#include "server/model/model.h"
#include "tests/test_util.h"

namespace moeserve::testing {

// max_model_len of the fixture tests: no more than any fixture's max_position_embeddings.
constexpr int32_t kFixtureMaxModelLen = 64;

// Room for every request of a test batch: 1024 blocks of 4 tokens, 256 batched tokens, 64
// sequences, kFixtureMaxModelLen.
inline EngineConfig RoomyConfig() {
  EngineConfig c;
  c.block_size = 4;
  c.num_kv_blocks = 1024;
  c.max_num_batched_tokens = 256;
  c.max_num_seqs = 64;
  c.max_model_len = kFixtureMaxModelLen;
  return c;
}

// An engine over the model in `dir` on a one-thread CPU backend; nullptr (and a test failure) when
// the model or the engine cannot be made.
inline std::unique_ptr<Engine> MakeEngine(const std::string& dir, EngineConfig config) {
  auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
  EXPECT_TRUE(backend.ok()) << backend.status();
  if (!backend.ok()) return nullptr;
  auto model = LoadModel(dir, backend->get(), {.load_mtp = config.speculative.method == SpeculativeMethod::kMtp});
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  config.model_dir = dir;
  auto engine = Engine::Create(config, EngineParts{.backend = std::move(*backend), .model = std::move(*model)});
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

// An engine over the committed fixture model tests/fixtures/models/<name>.
inline std::unique_ptr<Engine> MakeFixtureEngine(const std::string& name, EngineConfig config) {
  return MakeEngine((FixturesDir() / "models" / name).string(), std::move(config));
}

inline SamplingParams Greedy(int32_t max_tokens) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  return p;
}

// Temperature-1 sampling of exactly `max_tokens` tokens.
inline SamplingParams Sampled(int32_t max_tokens) {
  SamplingParams p = Greedy(max_tokens);
  p.temperature = 1.0f;
  return p;
}

// Generous for any test batch: a correct engine needs far fewer steps even when it preempts.
constexpr int kMaxTestSteps = 20000;

// Steps `engine` until idle, checking integrity after every step; returns the number of steps.
// Still busy after `max_steps` is a test failure (a livelock: e.g. requests preempting one
// another forever), not a hang.
inline int RunChecked(Engine& engine, int max_steps = kMaxTestSteps) {
  int steps = 0;
  while (engine.Step()) {
    ++steps;
    const absl::Status s = engine.CheckIntegrity();
    EXPECT_TRUE(s.ok()) << "after step " << steps << ": " << s;
    if (!s.ok()) break;
    if (steps >= max_steps) {
      ADD_FAILURE() << "the engine is still busy after " << steps << " steps";
      break;
    }
  }
  return steps;
}

// The outputs of a request the engine has finished (stepped from the test thread); a test
// failure and no outputs, instead of waiting forever, when it has not finished.
inline std::vector<RequestOutput> FinishedOutputs(RequestStream& stream) {
  if (!stream.finished()) {
    ADD_FAILURE() << "request " << stream.request_id() << " has not finished";
    return {};
  }
  return stream.WaitForCompletions();
}
inline RequestOutput FinishedOutput(RequestStream& stream) {
  if (!stream.finished()) {
    ADD_FAILURE() << "request " << stream.request_id() << " has not finished";
    return RequestOutput{};
  }
  return stream.WaitForCompletion();
}

// Adds every request, steps until idle and returns the merged output of each (empty for one
// that did not finish: a failure).
inline std::vector<RequestOutput> RunAll(Engine& engine, std::vector<EngineRequest> requests) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (EngineRequest& r : requests) {
    auto stream = engine.AddRequest(std::move(r));
    EXPECT_TRUE(stream.ok()) << stream.status();
    if (stream.ok()) streams.push_back(*stream);
  }
  RunChecked(engine);
  std::vector<RequestOutput> outputs;
  for (auto& s : streams) outputs.push_back(FinishedOutput(*s));
  return outputs;
}

// Mixed-length greedy requests whose prompt + max_tokens fit `max_model_len`.
inline std::vector<EngineRequest> RandomRequests(int n, int32_t vocab, int32_t max_model_len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<EngineRequest> out;
  for (int i = 0; i < n; ++i) {
    const int32_t len = std::uniform_int_distribution<int32_t>(1, max_model_len / 2)(rng);
    EngineRequest r;
    for (int32_t j = 0; j < len; ++j) {
      r.prompt_token_ids.push_back(std::uniform_int_distribution<int32_t>(3, vocab - 1)(rng));
    }
    const int32_t room = std::min<int32_t>(max_model_len - len, 20);
    r.sampling = Greedy(std::uniform_int_distribution<int32_t>(1, room)(rng));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace moeserve::testing

#endif  // MOESERVE_TESTS_ENGINE_ENGINE_TEST_UTIL_H_

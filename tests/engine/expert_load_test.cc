// MoE expert-load counters through the engine (CPU backend): after generating, every MoE layer's
// counts sum to tokens run through the model x top_k; the snapshot refreshes every
// expert_load_interval_steps steps and when idle; dense models publish none.

#include <filesystem>
#include <numeric>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/engine/engine.h"
#include "server/model/model.h"
#include "tests/engine/engine_test_util.h"

namespace moeserve {
namespace {

using ::moeserve::testing::Greedy;
using ::moeserve::testing::MakeFixtureEngine;
using ::moeserve::testing::RandomRequests;
using ::moeserve::testing::RunAll;

EngineConfig SmallConfig(int32_t interval) {
  EngineConfig c;
  c.block_size = 4;
  c.num_kv_blocks = 512;
  c.max_num_batched_tokens = 48;  // chunked prefill: several steps per prompt
  c.max_num_seqs = 8;
  c.max_model_len = 64;
  c.expert_load_interval_steps = interval;
  c.check_integrity_every_step = true;
  return c;
}

// The shipped default model (DeepSeek-V3 architecture, 8 experts, top-2, first layer dense).
std::unique_ptr<Engine> MakeDefaultModelEngine(EngineConfig config) {
  auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
  EXPECT_TRUE(backend.ok()) << backend.status();
  if (!backend.ok()) return nullptr;
  const std::string dir = MOESERVE_SOURCE_DIR "/models/default";
  auto model = LoadModel(dir, backend->get());
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  config.model_dir = dir;
  auto engine = Engine::Create(config, EngineParts{.backend = std::move(*backend),
                                                   .model = std::move(*model)});
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

void ExpectCountsMatchTokens(const Engine& engine) {
  const EngineMetrics m = engine.GetMetrics();
  ASSERT_NE(m.expert_load, nullptr);
  const ExpertLoad& load = *m.expert_load;
  const ModelConfig& c = engine.model_config();
  std::vector<int32_t> moe_layers;
  for (int32_t i = 0; i < c.num_hidden_layers; ++i) {
    if (c.IsMoeLayer(i)) moe_layers.push_back(i);
  }
  EXPECT_EQ(load.layers, moe_layers);
  ASSERT_EQ(load.tokens.size(), load.layers.size() * load.num_experts);
  ASSERT_GT(m.tokens_computed, 0);
  for (size_t l = 0; l < load.layers.size(); ++l) {
    int64_t sum = 0;
    int32_t used = 0;
    for (int32_t e = 0; e < load.num_experts; ++e) {
      EXPECT_GE(load.at(l, e), 0);
      sum += load.at(l, e);
      used += load.at(l, e) > 0 ? 1 : 0;
    }
    EXPECT_EQ(sum, m.tokens_computed * c.num_experts_per_tok) << "MoE layer " << load.layers[l];
    EXPECT_GE(used, c.num_experts_per_tok) << "MoE layer " << load.layers[l];
  }
}

TEST(ExpertLoadTest, DefaultModelCountsSumToTokensTimesTopK) {
  auto engine = MakeDefaultModelEngine(SmallConfig(/*interval=*/3));
  ASSERT_NE(engine, nullptr);
  const EngineMetrics before = engine->GetMetrics();
  ASSERT_NE(before.expert_load, nullptr);  // read at start: all zeros, profile steps reset
  for (int64_t n : before.expert_load->tokens) EXPECT_EQ(n, 0);
  EXPECT_EQ(before.expert_load->num_experts, 8);
  RunAll(*engine, RandomRequests(6, engine->vocab_size(), 64, /*seed=*/3));
  ExpectCountsMatchTokens(*engine);
}

TEST(ExpertLoadTest, FixtureMoeModelsCountEveryToken) {
  for (const char* name : {"deepseek_v3", "deepseek_v2_lite", "mixtral"}) {
    SCOPED_TRACE(name);
    auto engine = MakeFixtureEngine(name, SmallConfig(/*interval=*/16));
    ASSERT_NE(engine, nullptr);
    RunAll(*engine, RandomRequests(5, engine->vocab_size(), 64, /*seed=*/9));
    ExpectCountsMatchTokens(*engine);
  }
}

TEST(ExpertLoadTest, SnapshotTrailsWhileBusyAndCatchesUpWhenIdle) {
  auto engine = MakeDefaultModelEngine(SmallConfig(/*interval=*/1000));
  ASSERT_NE(engine, nullptr);
  auto stream = engine->AddRequest({.prompt_token_ids = {1, 5, 9, 13}, .sampling = Greedy(6)});
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_TRUE(engine->Step());
  ASSERT_TRUE(engine->Step());
  EngineMetrics busy = engine->GetMetrics();
  EXPECT_GT(busy.tokens_computed, 0);
  ASSERT_NE(busy.expert_load, nullptr);
  for (int64_t n : busy.expert_load->tokens) EXPECT_EQ(n, 0);  // not read since the start
  engine->RunUntilIdle();
  ExpectCountsMatchTokens(*engine);
}

TEST(ExpertLoadTest, IntervalZeroAndDenseModelsPublishNothing) {
  auto off = MakeDefaultModelEngine(SmallConfig(/*interval=*/0));
  ASSERT_NE(off, nullptr);
  RunAll(*off, RandomRequests(2, off->vocab_size(), 64, 1));
  EXPECT_EQ(off->GetMetrics().expert_load, nullptr);

  auto dense = MakeFixtureEngine("llama", SmallConfig(/*interval=*/1));
  ASSERT_NE(dense, nullptr);
  RunAll(*dense, RandomRequests(2, dense->vocab_size(), 64, 1));
  EXPECT_EQ(dense->GetMetrics().expert_load, nullptr);

  EngineConfig bad = SmallConfig(-1);
  auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
  ASSERT_TRUE(backend.ok());
  auto model = LoadModel(MOESERVE_SOURCE_DIR "/models/default", backend->get());
  ASSERT_TRUE(model.ok());
  auto engine = Engine::Create(bad, EngineParts{.backend = std::move(*backend),
                                                .model = std::move(*model)});
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moeserve

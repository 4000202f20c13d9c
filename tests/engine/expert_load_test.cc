// MoE expert-load counters through the engine (CPU backend): after generating, every MoE layer's
// counts sum to tokens run through the model x top_k; the snapshot refreshes every
// expert_load_interval_steps steps and when idle; dense models publish none.

#include <cstring>
#include <filesystem>
#include <numeric>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/engine/engine.h"
#include "server/model/model.h"
#include "server/model/step_context.h"
#include "server/runner/decode_graph_inputs.h"
#include "tests/engine/engine_test_util.h"

namespace moeserve::testing {
namespace {

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
  return MakeEngine(MOESERVE_SOURCE_DIR "/models/default", std::move(config));
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

// A decode step padded to a CUDA-graph bucket as DecodeGraphRunner stages it (here on the CPU):
// with StepContext::num_valid_tokens the padding rows stay out of the counts, which equal the
// unpadded step's; without it all bucket rows would count.
TEST(ExpertLoadTest, PaddedDecodeRowsAreNotCounted) {
  auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
  ASSERT_TRUE(backend.ok()) << backend.status();
  auto model = LoadModel(MOESERVE_SOURCE_DIR "/models/default", backend->get());
  ASSERT_TRUE(model.ok()) << model.status();
  Model& m = **model;
  const int32_t block_size = 16, k = m.config().num_experts_per_tok;
  ASSERT_TRUE(m.AllocateKvCache(KvLayoutFor(m, 64, block_size)).ok());
  ForwardBatch batch;  // 3 sequences decoding at positions 4, 39, 16 (a zeroed cache before)
  batch.block_size = block_size;
  batch.max_blocks_per_seq = 3;
  const std::vector<int32_t> lens = {5, 40, 17};
  for (int32_t s = 0; s < 3; ++s) {
    const std::vector<int32_t> table = {10 * s + 1, 10 * s + 2, 10 * s + 3};
    const int32_t token = 7 + 11 * s;
    batch.AddSequence(absl::MakeConstSpan(&token, 1), lens[s] - 1,
                      absl::MakeConstSpan(table).first((lens[s] + 15) / 16), true);
  }
  auto read = [&] {
    absl::StatusOr<ExpertLoad> load = m.ReadExpertLoad();
    EXPECT_TRUE(load.ok()) << load.status();
    return load.ok() ? load->tokens : std::vector<int64_t>();
  };
  ASSERT_TRUE(m.ResetExpertLoad().ok());
  ASSERT_TRUE(m.Forward(batch).ok());
  const std::vector<int64_t> want = read();

  const DecodeGraphShape shape{.bucket = 8, .width = 4};
  DecodeGraphInputs in;
  FillDecodeGraphInputs(batch, shape, &in);
  ForwardBatch padded;
  padded.block_size = block_size;
  padded.token_ids = in.token_ids;
  padded.positions = in.positions;
  padded.query_start_loc = in.query_start_loc;
  padded.seq_lens = in.seq_lens;
  padded.max_blocks_per_seq = shape.width;
  padded.block_tables = in.block_tables;
  padded.slot_mapping = in.slot_mapping;
  padded.logits_indices = {0, 1, 2, 3, 4, 5, 6, 7};
  auto ctx = StepContext::Upload(padded, backend->get());
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  for (bool with_valid : {true, false}) {
    SCOPED_TRACE(with_valid);
    if (with_valid) {
      auto n = (*backend)->Allocate(DType::kI32, {1});
      ASSERT_TRUE(n.ok());
      std::memcpy(n->data(), &in.num_valid_tokens, sizeof(int32_t));
      ctx->num_valid_tokens = *n;
    } else {
      ctx->num_valid_tokens = Tensor();
    }
    ASSERT_TRUE(m.ResetExpertLoad().ok());
    ASSERT_TRUE(m.ForwardOnDevice(*ctx).ok());
    const std::vector<int64_t> got = read();
    if (with_valid) {
      EXPECT_EQ(got, want);
    } else {
      EXPECT_EQ(std::accumulate(got.begin(), got.end(), int64_t{0}),
                std::accumulate(want.begin(), want.end(), int64_t{0}) / 3 * 8);
    }
  }
  EXPECT_EQ(std::accumulate(want.begin(), want.end(), int64_t{0}) % (3 * k), 0);
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
  auto engine = Engine::Create(bad, EngineParts{.backend = std::move(*backend), .model = std::move(*model)});
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moeserve::testing

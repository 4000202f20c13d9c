// The engine over a fake model with known logits: the batch the model runner builds, a request
// whose logits are NaN failing alone, and a failing forward pass failing only its step.

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/engine/engine.h"
#include "server/runner/model_runner.h"
#include "tests/engine/engine_test_util.h"

namespace moeserve {
namespace {

constexpr int32_t kVocab = 32;
constexpr int32_t kPoison = 31;  // a row whose last token is this gets NaN logits

// Next token = (3 * token + position + 1) % kVocab, never kPoison unless fed.
int32_t FakeNext(int32_t token, int32_t position) {
  const int32_t t = (3 * token + position + 1) % kVocab;
  return t == kPoison ? 0 : t;
}

class FakeModel : public Model {
 public:
  explicit FakeModel(Backend* backend) : backend_(backend) {
    config_.vocab_size = kVocab;
    config_.max_position_embeddings = 64;
  }
  const ModelConfig& config() const override { return config_; }
  KvCacheSpec kv_cache_spec() const override { return {.num_layers = 1, .bytes_per_token_per_layer = 8}; }
  absl::Status AllocateKvCache(const KvLayout& layout) override {
    layout_ = layout;
    return absl::OkStatus();
  }
  const KvLayout& kv_layout() const override { return layout_; }
  absl::StatusOr<Tensor> Forward(const ForwardBatch& batch) override {
    ++forward_calls;
    last_batch = batch;
    if (fail_next_forward) {
      fail_next_forward = false;
      return absl::InternalError("device lost");
    }
    if (absl::Status s = batch.Validate(layout_.num_blocks, 64); !s.ok()) return s;
    const int64_t n = static_cast<int64_t>(batch.logits_indices.size());
    std::vector<float> values(n * kVocab, 0.0f);
    for (int64_t r = 0; r < n; ++r) {
      const int32_t row = batch.logits_indices[r];
      const int32_t token = batch.token_ids[row];
      float* out = values.data() + r * kVocab;
      if (token == kPoison) {
        out[0] = std::numeric_limits<float>::quiet_NaN();
      } else {
        out[FakeNext(token, batch.positions[row])] = 10.0f;
      }
    }
    return backend_->CreateWeight(values, Shape{n, kVocab});
  }

  bool fail_next_forward = false;
  int forward_calls = 0;
  ForwardBatch last_batch;

 private:
  Backend* backend_;
  ModelConfig config_;
  KvLayout layout_{.num_blocks = 0};
};

class FakeModelEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
    ASSERT_TRUE(backend.ok());
    auto model = std::make_unique<FakeModel>(backend->get());
    model_ = model.get();
    EngineConfig c;
    c.block_size = 4;
    c.kv_cache_memory_bytes = 8 * 4 * 40;  // 40 blocks
    c.max_num_batched_tokens = 8;
    c.max_num_seqs = 4;
    auto engine = Engine::Create(c, {.backend = std::move(*backend), .model = std::move(model)});
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }
  std::shared_ptr<RequestStream> Add(std::vector<int32_t> prompt, int32_t max_tokens) {
    EngineRequest r;
    r.prompt_token_ids = std::move(prompt);
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = max_tokens;
    r.sampling.ignore_eos = true;
    auto s = engine_->AddRequest(std::move(r));
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }
  void RunChecked() { testing::RunChecked(*engine_); }
  FakeModel* model_ = nullptr;
  std::unique_ptr<Engine> engine_;
};

TEST_F(FakeModelEngineTest, KvCacheSizedFromMemory) {
  EXPECT_EQ(engine_->config().num_kv_blocks, 40);
  // One layout for the model's cache, the manager and the batches (null block included).
  EXPECT_EQ(model_->kv_layout(), engine_->kv_layout());
  EXPECT_EQ(model_->kv_layout().num_blocks, 40);
  EXPECT_EQ(model_->kv_layout().block_size, 4);
  EXPECT_EQ(engine_->GetMetrics().kv_blocks_total, 39);
}

TEST_F(FakeModelEngineTest, GeneratesTheKnownChain) {
  auto s = Add({1, 2, 3}, 5);
  RunChecked();
  std::vector<int32_t> want;
  int32_t token = 3, pos = 2;
  for (int i = 0; i < 5; ++i) want.push_back(token = FakeNext(token, pos++));
  EXPECT_EQ(testing::FinishedOutput(*s).token_ids, want);
}

TEST_F(FakeModelEngineTest, ChunkedPrefillAsksLogitsOnlyForTheLastChunk) {
  auto s = Add({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 2);  // budget 8: two chunks
  engine_->Step();
  EXPECT_EQ(model_->last_batch.num_tokens(), 8);
  EXPECT_TRUE(model_->last_batch.logits_indices.empty());
  EXPECT_EQ(model_->forward_calls, 1);  // the chunk's KV must be written all the same
  engine_->Step();
  EXPECT_EQ(model_->last_batch.num_tokens(), 4);
  EXPECT_EQ(model_->last_batch.logits_indices, std::vector<int32_t>{3});
  RunChecked();
  EXPECT_EQ(testing::FinishedOutput(*s).token_ids.size(), 2u);
}

TEST_F(FakeModelEngineTest, NanLogitsFailOnlyThatRequest) {
  auto good = Add({1, 2}, 6);
  auto bad = Add({4, kPoison}, 6);
  RunChecked();
  const RequestOutput b = testing::FinishedOutput(*bad);
  EXPECT_EQ(b.finish_reason, FinishReason::kError);
  // The model's fault, not the request's (it was InvalidArgument).
  EXPECT_EQ(b.error.code(), absl::StatusCode::kInternal) << b.error;
  EXPECT_THAT(std::string(b.error.message()), ::testing::HasSubstr("NaN"));
  EXPECT_TRUE(b.token_ids.empty());
  const RequestOutput g = testing::FinishedOutput(*good);
  EXPECT_EQ(g.finish_reason, FinishReason::kLength);
  EXPECT_EQ(g.token_ids.size(), 6u);
  EXPECT_EQ(engine_->GetMetrics().requests_finished_error, 1);
  EXPECT_EQ(engine_->GetMetrics().model_faults, 1);
  EXPECT_EQ(engine_->GetMetrics().kv_blocks_used, 0);
  EXPECT_TRUE(engine_->healthy());  // one bad row among good ones
}

TEST_F(FakeModelEngineTest, AModelThatProducesNoNumbersIsUnhealthyUntilItDoesAgain) {
  std::vector<bool> changes;
  engine_->SetHealthListener([&changes](bool healthy) { changes.push_back(healthy); });
  for (int i = 0; i < Engine::kUnhealthyAfterModelFaults; ++i) {
    EXPECT_TRUE(engine_->healthy()) << i;
    auto bad = Add({4, kPoison}, 6);
    RunChecked();
    EXPECT_EQ(testing::FinishedOutput(*bad).error.code(), absl::StatusCode::kInternal);
  }
  EXPECT_FALSE(engine_->healthy());
  EXPECT_EQ(changes, std::vector<bool>{false});
  EXPECT_EQ(engine_->GetMetrics().model_faults, Engine::kUnhealthyAfterModelFaults);
  auto good = Add({1, 2}, 2);
  RunChecked();
  EXPECT_EQ(testing::FinishedOutput(*good).token_ids.size(), 2u);
  EXPECT_TRUE(engine_->healthy());
  EXPECT_EQ(changes, (std::vector<bool>{false, true}));
  engine_->SetHealthListener(nullptr);
}

TEST_F(FakeModelEngineTest, FailedForwardFailsItsStepOnly) {
  auto a = Add({1, 2}, 6);
  auto b = Add({3}, 6);
  model_->fail_next_forward = true;
  engine_->Step();
  ASSERT_TRUE(engine_->CheckIntegrity().ok());
  auto c = Add({5, 6}, 3);
  RunChecked();
  EXPECT_EQ(testing::FinishedOutput(*a).finish_reason, FinishReason::kError);
  const RequestOutput bo = testing::FinishedOutput(*b);
  EXPECT_EQ(bo.finish_reason, FinishReason::kError);
  EXPECT_EQ(bo.error.message(), "device lost");
  EXPECT_EQ(testing::FinishedOutput(*c).token_ids.size(), 3u);
  EXPECT_EQ(engine_->GetMetrics().kv_blocks_used, 0);
}

}  // namespace
}  // namespace moeserve

// The default model shipped in models/default (a DeepSeek-V3-architecture MoE distilled from
// stories260K by tools/distill/): its files load, its logits match transformers' on a fixed prompt,
// its greedy story starts with the committed tokens, and its routers use every routed expert.
// models/default/reference.safetensors is written by tools/distill/export.py.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/model/config.h"
#include "server/model/model.h"
#include "server/model/safetensors.h"
#include "server/tokenizer/tokenizer.h"
#include "tests/model/model_test_util.h"

namespace moeserve {
namespace {

constexpr double kRelTolerance = 1e-4;
constexpr char kModelDir[] = MOESERVE_SOURCE_DIR "/models/default";

// Greedy continuation of "Once upon a time" (ids after the prompt), as transformers computes it.
// Changing the shipped weights must change this list on purpose.
const std::vector<int32_t> kGreedyIds = {
    432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
    410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394,
    261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432,
};

using moeserve::testing::Argmax;
using moeserve::testing::ExpectLogitsMatch;

template <typename T>
std::vector<T> Read(const SafetensorsFile& file, const std::string& name) {
  return moeserve::testing::ReadTensor<T>(file, name);
}

class DefaultModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ref = SafetensorsFile::Open(absl::StrCat(kModelDir, "/reference.safetensors"));
    ASSERT_TRUE(ref.ok()) << ref.status();
    ref_ = std::move(*ref);
    loaded_ = std::make_unique<moeserve::testing::LoadedModel>(kModelDir, kNumBlocks, kBlockSize);
    ASSERT_TRUE(loaded_->ok());
    model_ = &loaded_->model();
    backend_ = &loaded_->backend();
    vocab_ = loaded_->vocab();
  }

  std::vector<float> Run(const ForwardBatch& batch) { return loaded_->Run(batch); }

  static constexpr int32_t kNumBlocks = 64;
  static constexpr int32_t kBlockSize = 16;
  std::unique_ptr<SafetensorsFile> ref_;
  std::unique_ptr<moeserve::testing::LoadedModel> loaded_;
  Model* model_ = nullptr;
  Backend* backend_ = nullptr;
  int64_t vocab_ = 0;
};

TEST_F(DefaultModelTest, IsDeepSeekV3MoeWithTheStoriesVocabulary) {
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_GT(c.kv_lora_rank, 0);
  EXPECT_EQ(c.routing.method, MoeTopkMethod::kNoAuxTc);
  EXPECT_EQ(c.routing.scoring, MoeScoring::kSigmoid);
  EXPECT_EQ(c.routing.n_group, 2);
}

TEST_F(DefaultModelTest, PromptTokenizesAsInTransformers) {
  auto tok = Tokenizer::FromDirectory(kModelDir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto ids = (*tok)->Encode("Once upon a time");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, Read<int32_t>(*ref_, "input_ids"));
}

// (a) Prefill logits at every prompt position vs transformers: max|Δ| / max|ref| ≤ 1e-4, same argmax.
TEST_F(DefaultModelTest, PrefillLogitsMatchTransformers) {
  const std::vector<int32_t> ids = Read<int32_t>(*ref_, "input_ids");
  const std::vector<float> want = Read<float>(*ref_, "prefill_logits");
  const int32_t p = static_cast<int32_t>(ids.size());
  ASSERT_GT(p, 1);
  ASSERT_EQ(static_cast<int64_t>(want.size()), p * vocab_);
  ForwardBatch prefill{.block_size = kBlockSize};
  prefill.AddSequence(ids, 0, {0, 1, 2, 3}, false);
  for (int32_t i = 0; i < p; ++i) prefill.logits_indices.push_back(i);
  const std::vector<float> got = Run(prefill);
  ASSERT_EQ(got.size(), want.size());
  ExpectLogitsMatch(got, want.data(), p, vocab_, "prefill", kRelTolerance);
}

// (b) Greedy decoding through the paged KV cache reproduces the committed continuation, which is
// also the one transformers computed (reference greedy_ids).
TEST_F(DefaultModelTest, GreedyStoryStartsWithCommittedTokens) {
  ASSERT_FALSE(kGreedyIds.empty());
  EXPECT_EQ(Read<int32_t>(*ref_, "greedy_ids"), kGreedyIds);
  const std::vector<int32_t> ids = Read<int32_t>(*ref_, "input_ids");
  const std::vector<int32_t> blocks = {0, 1, 2, 3, 4, 5, 6, 7};
  ForwardBatch prefill{.block_size = kBlockSize};
  prefill.AddSequence(ids, 0, blocks, false);
  prefill.logits_indices.push_back(static_cast<int32_t>(ids.size()) - 1);
  std::vector<float> logits = Run(prefill);
  ASSERT_EQ(static_cast<int64_t>(logits.size()), vocab_);
  std::vector<int32_t> got;
  while (got.size() < kGreedyIds.size()) {
    got.push_back(Argmax(logits.data(), vocab_));
    ForwardBatch decode{.block_size = kBlockSize};
    decode.AddSequence({got.back()}, static_cast<int32_t>(ids.size() + got.size() - 1), blocks, true);
    logits = Run(decode);
    ASSERT_EQ(static_cast<int64_t>(logits.size()), vocab_);
  }
  EXPECT_EQ(got, kGreedyIds);
}

// (c) Routing over held-out teacher text: moeserve's MoeRoute on the shipped router weights and
// correction biases, fed the router inputs transformers computed, (1) picks the experts transformers
// picked and (2) gives every routed expert of every MoE layer a real share of the load (≥ 1/4 of
// the uniform share): no collapsed experts.
TEST_F(DefaultModelTest, EveryRoutedExpertIsUsed) {
  const ModelConfig& c = model_->config();
  auto weights = SafetensorsFile::Open(absl::StrCat(kModelDir, "/model.safetensors"));
  ASSERT_TRUE(weights.ok()) << weights.status();
  const int64_t E = c.num_experts, k = c.num_experts_per_tok, d = c.hidden_size;
  int moe_layers = 0;
  for (int64_t layer = c.first_k_dense_replace; layer < c.num_hidden_layers; ++layer) {
    ++moe_layers;
    const std::string gate = absl::StrCat("model.layers.", layer, ".mlp.gate.");
    ASSERT_EQ((*weights)->Find(gate + "weight")->file_dtype, SafetensorsDType::kF32);
    const std::vector<float> w = Read<float>(**weights, gate + "weight");
    const std::vector<float> bias = Read<float>(**weights, gate + "e_score_correction_bias");
    const std::vector<float> h = Read<float>(*ref_, absl::StrCat("route_hidden_", layer));
    const std::vector<int32_t> hf_topk = Read<int32_t>(*ref_, absl::StrCat("route_topk_", layer));
    ASSERT_EQ(static_cast<int64_t>(w.size()), E * d);
    ASSERT_EQ(static_cast<int64_t>(bias.size()), E);
    const int64_t T = static_cast<int64_t>(h.size()) / d;
    ASSERT_GE(T, 128);
    ASSERT_EQ(static_cast<int64_t>(hf_topk.size()), T * k);

    std::vector<float> logits(T * E);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t e = 0; e < E; ++e) {
        double s = 0;
        for (int64_t i = 0; i < d; ++i) s += static_cast<double>(h[t * d + i]) * w[e * d + i];
        logits[t * E + e] = static_cast<float>(s);
      }
    auto upload = [&](const std::vector<float>& v, Shape shape) {
      auto t = backend_->Allocate(DType::kF32, shape);
      EXPECT_TRUE(t.ok()) << t.status();
      EXPECT_TRUE(backend_->CopyFromHost(HostBytes(v), *t).ok());
      return *t;
    };
    auto ids_t = backend_->Allocate(DType::kI32, Shape{T, k});
    auto wts_t = backend_->Allocate(DType::kF32, Shape{T, k});
    ASSERT_TRUE(ids_t.ok() && wts_t.ok());
    ASSERT_TRUE(
        backend_->MoeRoute(upload(logits, Shape{T, E}), upload(bias, Shape{E}), c.routing, *ids_t, *wts_t).ok());
    std::vector<int32_t> ids(T * k);
    ASSERT_TRUE(backend_->CopyToHost(*ids_t, MutableHostBytes(ids)).ok());
    ASSERT_TRUE(backend_->Synchronize().ok());

    std::vector<int64_t> count(E, 0);
    int64_t same = 0;
    for (int64_t t = 0; t < T; ++t) {
      std::set<int32_t> mine, theirs;
      for (int64_t j = 0; j < k; ++j) {
        ASSERT_GE(ids[t * k + j], 0);
        ASSERT_LT(ids[t * k + j], E);
        ++count[ids[t * k + j]];
        mine.insert(ids[t * k + j]);
        theirs.insert(hf_topk[t * k + j]);
      }
      same += mine == theirs;
    }
    // Near-ties may flip in float; anything beyond a handful of tokens is a routing bug.
    EXPECT_GE(same, T - T / 100) << "layer " << layer << ": expert choice differs from transformers";
    const double uniform = static_cast<double>(T * k) / E;
    for (int64_t e = 0; e < E; ++e)
      EXPECT_GE(count[e], uniform / 4) << "layer " << layer << " expert " << e << " is (nearly) unused";
  }
  EXPECT_EQ(moe_layers, c.num_hidden_layers - c.first_k_dense_replace);
}

}  // namespace
}  // namespace moeserve

// DeepSeek-V3 multi-token prediction: the MTP layer of the random fixture
// tests/fixtures/models/deepseek_v3_mtp against the independent torch reference
// (tools/mtp_reference.py): the main model's hidden states, teacher-forced MTP logits at every
// position, and greedy drafts chained through the MTP's own hidden state.

#include <filesystem>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/model/model.h"
#include "server/model/safetensors.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using ::moeserve::testing::ExpectLogitsMatch;
using ::moeserve::testing::ReadTensor;

constexpr int32_t kBlockSize = 4;

std::filesystem::path FixtureDir() { return moeserve::testing::FixturesDir() / "models" / "deepseek_v3_mtp"; }

// One sequence of `tokens` at positions [first, first + n), blocks 1.. of the cache.
ForwardBatch Batch(const std::vector<int32_t>& tokens, int32_t first, bool all_logits) {
  ForwardBatch b;
  b.block_size = kBlockSize;
  std::vector<int32_t> table;
  for (int32_t i = 0; i < 16; ++i) table.push_back(1 + i);
  b.max_blocks_per_seq = static_cast<int32_t>(table.size());
  b.AddSequence(tokens, first, table, /*want_logits=*/!all_logits);
  if (all_logits) {
    for (int32_t r = 0; r < static_cast<int32_t>(tokens.size()); ++r) b.logits_indices.push_back(r);
  }
  return b;
}

class MtpParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = CreateBackend({.device = "cpu", .num_threads = 2});
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(*backend);
    auto model = LoadModel(FixtureDir().string(), backend_.get(), {.load_mtp = true});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    ASSERT_TRUE(model_->has_mtp());
    ASSERT_TRUE(model_->AllocateKvCache(KvLayoutFor(*model_, 32, kBlockSize)).ok());
    auto file = SafetensorsFile::Open((FixtureDir() / "reference_mtp.safetensors").string());
    ASSERT_TRUE(file.ok()) << file.status();
    ref_ = std::move(*file);
    ids_ = ReadTensor<int32_t>(*ref_, "token_ids");
    ASSERT_EQ(ids_.size(), 14u);
  }

  std::vector<float> Host(const Tensor& t) {
    std::vector<float> host(static_cast<size_t>(t.numel()));
    EXPECT_TRUE(backend_->CopyToHostF32(t, absl::MakeSpan(host)).ok());
    return host;
  }

  // Main forward over ids_[0, n) from an empty cache; the hidden rows.
  Tensor MainHidden(int32_t n) {
    Tensor hidden;
    const std::vector<int32_t> tokens(ids_.begin(), ids_.begin() + n);
    auto logits = model_->ForwardWithHidden(Batch(tokens, 0, false), &hidden);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return hidden;
  }

  // The reference's chained drafts after a prompt of p tokens: `first` is the pass that gave draft
  // 1 (its logits) and `prev` its MTP output row; drafts 2.. chain one position at a time.
  void ExpectChainMatches(int32_t p, const MtpOutput& first, Tensor prev) {
    const std::vector<int32_t> want_ids = ReadTensor<int32_t>(*ref_, "chain_ids");
    const std::vector<float> want_logits = ReadTensor<float>(*ref_, "chain_logits");
    const int64_t vocab = model_->config().vocab_size;
    std::vector<float> got = Host(first.logits);
    for (size_t j = 0; j < want_ids.size(); ++j) {
      ExpectLogitsMatch(got, want_logits.data() + j * vocab, 1, vocab, "chain step", 1e-4);
      const int32_t draft = moeserve::testing::Argmax(got.data(), vocab);
      ASSERT_EQ(draft, want_ids[j]) << "draft " << j;
      if (j + 1 == want_ids.size()) break;
      auto step = model_->ForwardMtp(Batch({draft}, p + static_cast<int32_t>(j), false), prev);
      ASSERT_TRUE(step.ok()) << step.status();
      prev = step->hidden;
      got = Host(step->logits);
    }
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<SafetensorsFile> ref_;
  std::vector<int32_t> ids_;
};

TEST_F(MtpParityTest, TeacherForcedLogitsMatchTheTorchReference) {
  const int32_t t = static_cast<int32_t>(ids_.size());
  const int64_t d = model_->config().hidden_size;
  const int64_t vocab = model_->config().vocab_size;
  const Tensor hidden = MainHidden(t);
  ASSERT_TRUE(hidden.defined());
  const std::vector<float> want_hidden = ReadTensor<float>(*ref_, "main_hidden");
  ExpectLogitsMatch(Host(hidden), want_hidden.data(), t, d, "main hidden", 1e-4);
  // Rows 0..t-2: tokens shifted by one, the main hidden rows 0..t-2.
  const std::vector<int32_t> next(ids_.begin() + 1, ids_.end());
  auto out = model_->ForwardMtp(Batch(next, 0, true), hidden.Slice(0, t - 1));
  ASSERT_TRUE(out.ok()) << out.status();
  const std::vector<float> want = ReadTensor<float>(*ref_, "mtp_logits");
  ExpectLogitsMatch(Host(out->logits), want.data(), t - 1, vocab, "MTP logits", 1e-4);
  EXPECT_EQ(out->hidden.dim(0), t - 1);
}

TEST_F(MtpParityTest, ChainedDraftsMatchTheTorchReference) {
  const int32_t p = ReadTensor<int32_t>(*ref_, "chain_prompt").at(0);
  // All the prompt's MTP rows in one pass (the last one with the next token), then one position at
  // a time with the previous row's MTP output.
  const Tensor hidden = MainHidden(p);
  const std::vector<int32_t> next(ids_.begin() + 1, ids_.begin() + p + 1);
  auto out = model_->ForwardMtp(Batch(next, 0, false), hidden);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectChainMatches(p, *out, out->hidden.Slice(p - 1, 1));
}

// The drafter's order: the prompt's rows but the last only write the MTP cache (WriteMtpCache), the
// last one alone gives the first draft, and the chain reads those cache rows.
TEST_F(MtpParityTest, CacheOnlyRowsThenTheLastRowMatchTheTorchReference) {
  const int32_t p = ReadTensor<int32_t>(*ref_, "chain_prompt").at(0);
  ASSERT_GE(p, 2);
  const Tensor hidden = MainHidden(p);
  const std::vector<int32_t> next(ids_.begin() + 1, ids_.begin() + p);  // rows 0 .. p-2
  ASSERT_TRUE(model_->WriteMtpCache(Batch(next, 0, false), hidden.Slice(0, p - 1)).ok());
  auto out = model_->ForwardMtp(Batch({ids_[p]}, p - 1, false), hidden.Slice(p - 1, 1));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectChainMatches(p, *out, out->hidden);
  // Its checks are ForwardMtp's.
  const absl::Status bad = model_->WriteMtpCache(Batch(next, 0, false), hidden);
  EXPECT_TRUE(absl::IsInvalidArgument(bad)) << bad;
  EXPECT_THAT(bad.message(), ::testing::HasSubstr("prev_hidden"));
}

TEST_F(MtpParityTest, LoadingIsOptInAndNamesWhatIsMissing) {
  auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
  ASSERT_TRUE(backend.ok());
  auto plain = LoadModel(FixtureDir().string(), backend->get());
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE((*plain)->has_mtp());
  EXPECT_EQ((*plain)->kv_cache_spec().num_layers, model_->kv_cache_spec().num_layers - 1);
  // The deepseek_v3 fixture declares an MTP layer but its checkpoint has none.
  auto missing = LoadModel((moeserve::testing::FixturesDir() / "models" / "deepseek_v3").string(), backend->get(),
                           {.load_mtp = true});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), ::testing::HasSubstr("model.layers.3."));
  auto llama =
      LoadModel((moeserve::testing::FixturesDir() / "models" / "llama").string(), backend->get(), {.load_mtp = true});
  ASSERT_FALSE(llama.ok());
  EXPECT_THAT(llama.status().message(), ::testing::HasSubstr("multi-token-prediction"));
}

}  // namespace
}  // namespace moeserve

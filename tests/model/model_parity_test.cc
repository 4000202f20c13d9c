// Compares moeserve's CPU backend with transformers on the committed fixtures
// (tests/fixtures/models/*, made by tools/make_test_models.py): prefill logits at every position,
// then greedy decode steps through the paged KV cache — once alone, once chunked and batched with
// another sequence on scattered blocks. Bound: max|Δ| / max|ref| ≤ 1e-4 and identical argmax.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/model/model.h"
#include "server/model/safetensors.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

struct Reference {
  std::vector<int32_t> input_ids, input_ids_2, decode_ids;
  std::vector<float> prefill_logits, prefill_logits_2, decode_logits;
};

Reference LoadReference(const std::filesystem::path& dir) {
  auto file = SafetensorsFile::Open((dir / "reference.safetensors").string());
  EXPECT_TRUE(file.ok()) << file.status();
  Reference r;
  if (!file.ok()) return r;
  r.input_ids = moeserve::testing::ReadTensor<int32_t>(**file, "input_ids");
  r.input_ids_2 = moeserve::testing::ReadTensor<int32_t>(**file, "input_ids_2");
  r.decode_ids = moeserve::testing::ReadTensor<int32_t>(**file, "decode_ids");
  r.prefill_logits = moeserve::testing::ReadTensor<float>(**file, "prefill_logits");
  r.prefill_logits_2 = moeserve::testing::ReadTensor<float>(**file, "prefill_logits_2");
  r.decode_logits = moeserve::testing::ReadTensor<float>(**file, "decode_logits");
  return r;
}

using moeserve::testing::Argmax;
using moeserve::testing::ExpectLogitsMatch;

class ModelParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = moeserve::testing::FixturesDir() / "models" / GetParam();
    if (!std::filesystem::exists(dir_ / "reference.safetensors")) GTEST_SKIP() << "fixture missing: " << dir_;
    ref_ = LoadReference(dir_);
    loaded_ = std::make_unique<moeserve::testing::LoadedModel>(dir_.string(), kNumBlocks, kBlockSize);
    ASSERT_TRUE(loaded_->ok());
    vocab_ = loaded_->vocab();
  }

  std::vector<float> Run(const ForwardBatch& batch) { return loaded_->Run(batch); }

  static constexpr int32_t kNumBlocks = 32;
  static constexpr int32_t kBlockSize = 4;  // small, so prompts cross several block boundaries
  std::filesystem::path dir_;
  Reference ref_;
  std::unique_ptr<moeserve::testing::LoadedModel> loaded_;
  int64_t vocab_ = 0;
};

TEST_P(ModelParityTest, PrefillThenDecodeAlone) {
  const std::vector<int32_t> blocks = {0, 1, 2, 3, 4, 5, 6, 7};
  const int32_t p = static_cast<int32_t>(ref_.input_ids.size());
  ForwardBatch prefill{.block_size = kBlockSize};
  prefill.AddSequence(ref_.input_ids, 0, blocks, false);
  for (int32_t i = 0; i < p; ++i) prefill.logits_indices.push_back(i);
  ExpectLogitsMatch(Run(prefill), ref_.prefill_logits.data(), p, vocab_, "prefill");

  for (size_t step = 0; step < ref_.decode_ids.size(); ++step) {
    ForwardBatch decode{.block_size = kBlockSize};
    decode.AddSequence({ref_.decode_ids[step]}, p + static_cast<int32_t>(step), blocks, true);
    ExpectLogitsMatch(Run(decode), ref_.decode_logits.data() + step * vocab_, 1, vocab_,
                      "decode step " + std::to_string(step));
  }
}

TEST_P(ModelParityTest, ChunkedPrefillAndDecodeBatchedWithAnotherSequence) {
  // Scattered, interleaved blocks for the two sequences.
  const std::vector<int32_t> blocks_a = {9, 3, 14, 6, 21, 1, 30, 11};
  const std::vector<int32_t> blocks_b = {2, 17, 8, 25, 12, 5, 19, 28};
  const std::vector<int32_t>& a = ref_.input_ids;
  const std::vector<int32_t>& b = ref_.input_ids_2;
  const int32_t pa = static_cast<int32_t>(a.size()), pb = static_cast<int32_t>(b.size());
  const int32_t chunk = 5;  // sequence A's prompt in two chunks: [0, 5) then [5, pa)

  // Step 1: A's first chunk and all of B, logits for every row.
  ForwardBatch step1{.block_size = kBlockSize};
  step1.AddSequence(absl::MakeConstSpan(a).subspan(0, chunk), 0, blocks_a, false);
  step1.AddSequence(b, 0, blocks_b, false);
  for (int32_t i = 0; i < chunk + pb; ++i) step1.logits_indices.push_back(i);
  const std::vector<float> out1 = Run(step1);
  ASSERT_EQ(static_cast<int64_t>(out1.size()), (chunk + pb) * vocab_);
  ExpectLogitsMatch(std::vector<float>(out1.begin(), out1.begin() + chunk * vocab_), ref_.prefill_logits.data(), chunk,
                    vocab_, "A chunk 1");
  ExpectLogitsMatch(std::vector<float>(out1.begin() + chunk * vocab_, out1.end()), ref_.prefill_logits_2.data(), pb,
                    vocab_, "B prefill");

  // Step 2: B decodes its greedy token while A prefills the rest of its prompt.
  const int32_t b_next = static_cast<int32_t>(Argmax(ref_.prefill_logits_2.data() + (pb - 1) * vocab_, vocab_));
  ForwardBatch step2{.block_size = kBlockSize};
  step2.AddSequence({b_next}, pb, blocks_b, true);
  step2.AddSequence(absl::MakeConstSpan(a).subspan(chunk), chunk, blocks_a, false);
  for (int32_t i = 0; i < pa - chunk; ++i) step2.logits_indices.push_back(1 + i);
  const std::vector<float> out2 = Run(step2);
  ASSERT_EQ(static_cast<int64_t>(out2.size()), (1 + pa - chunk) * vocab_);
  ExpectLogitsMatch(std::vector<float>(out2.begin() + vocab_, out2.end()), ref_.prefill_logits.data() + chunk * vocab_,
                    pa - chunk, vocab_, "A chunk 2");

  // Then both decode together; A follows the reference tokens.
  int32_t b_token = static_cast<int32_t>(Argmax(out2.data(), vocab_));
  for (size_t step = 0; step < ref_.decode_ids.size(); ++step) {
    ForwardBatch decode{.block_size = kBlockSize};
    decode.AddSequence({b_token}, pb + 1 + static_cast<int32_t>(step), blocks_b, true);
    decode.AddSequence({ref_.decode_ids[step]}, pa + static_cast<int32_t>(step), blocks_a, true);
    const std::vector<float> out = Run(decode);
    ASSERT_EQ(static_cast<int64_t>(out.size()), 2 * vocab_);
    ExpectLogitsMatch(std::vector<float>(out.begin() + vocab_, out.end()), ref_.decode_logits.data() + step * vocab_, 1,
                      vocab_, "batched decode step " + std::to_string(step));
    b_token = static_cast<int32_t>(Argmax(out.data(), vocab_));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelParityTest,
                         ::testing::Values("llama", "llama3_tied", "llama_linear", "qwen2", "qwen2_bf16_sharded",
                                           "mixtral", "deepseek_v2_lite", "deepseek_v2", "deepseek_v3",
                                           "deepseek_v3_fp8", "qwen3", "qwen3_moe"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace moeserve

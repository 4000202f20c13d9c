// End to end on a real trained model: llama2.c's stories260K converted to a Hugging Face directory
// (weights with rotate-half permutation + tokenizer.json), then greedy generation from BOS must
// write the reference story from ../shared/data/README.md.

#include <string>

#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/cli/single_sequence.h"
#include "server/model/llama2c_checkpoint.h"
#include "server/model/model.h"
#include "server/tokenizer/llama2c_vocab.h"
#include "server/tokenizer/tokenizer.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

constexpr char kReferenceStory[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One "
    "day, she saw a big, red ball. She wanted to play with it, but it was too high.";

class Stories260kTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MOESERVE_REQUIRE_TEST_DATA("models/stories260K/stories260K.bin");
    const auto src = moeserve::testing::TestDataDir() / "models" / "stories260K";
    dir_ = moeserve::testing::MakeTempDir("stories260k").string();
    ASSERT_TRUE(ConvertLlama2cCheckpoint((src / "stories260K.bin").string(), dir_).ok());
    auto vocab = ConvertLlama2cVocab((src / "tok512.bin").string());
    ASSERT_TRUE(vocab.ok()) << vocab.status();
    ASSERT_TRUE(WriteConvertedTokenizer(*vocab, dir_).ok());
    auto backend = CreateBackend({.device = "cpu", .num_threads = 2});
    ASSERT_TRUE(backend.ok());
    backend_ = std::move(*backend);
    auto model = LoadModel(dir_, backend_.get());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    auto tokenizer = Tokenizer::FromDirectory(dir_);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
  }

  std::string dir_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(Stories260kTest, ConvertedConfigDescribesTheModel) {
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.architecture, Architecture::kLlama);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(tokenizer_->bos_token_id(), 1);
  EXPECT_EQ(tokenizer_->eos_token_id(), 2);
}

TEST_F(Stories260kTest, GreedyFromBosWritesTheReferenceStory) {
  SingleSequenceOptions options{.sampling = {.max_tokens = 80, .temperature = 0.0f}};
  auto out = GenerateSingleSequence(*model_, *backend_, std::vector<int32_t>{1}, options);
  ASSERT_TRUE(out.ok()) << out.status();
  auto text = tokenizer_->Decode(*out, /*skip_special_tokens=*/true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->substr(0, sizeof(kReferenceStory) - 1), kReferenceStory) << *text;
}

TEST_F(Stories260kTest, PromptContinuationMatchesTheStory) {
  auto prompt = tokenizer_->Encode("Once upon a time", /*add_special_tokens=*/true);
  ASSERT_TRUE(prompt.ok());
  ASSERT_EQ((*prompt)[0], 1);  // BOS from add_bos_token
  auto out = GenerateSingleSequence(*model_, *backend_, *prompt, {.sampling = {.max_tokens = 12, .temperature = 0.0f}});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<int32_t> all = *prompt;
  all.insert(all.end(), out->begin(), out->end());
  auto text = tokenizer_->Decode(all, /*skip_special_tokens=*/true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << *text;
}

TEST_F(Stories260kTest, SeededSamplingIsReproducible) {
  SingleSequenceOptions options{.sampling = {.max_tokens = 30, .temperature = 1.0f, .seed = 7}};
  auto a = GenerateSingleSequence(*model_, *backend_, std::vector<int32_t>{1}, options);
  auto b = GenerateSingleSequence(*model_, *backend_, std::vector<int32_t>{1}, options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  options.sampling.seed = 8;
  auto c = GenerateSingleSequence(*model_, *backend_, std::vector<int32_t>{1}, options);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(*a, *c);
}

}  // namespace
}  // namespace moeserve

// The engine on a real trained model with a tokenizer: llama2.c's stories260K converted to a
// Hugging Face directory. The reference story, text deltas, stop strings, and batched output
// (chunked prefill) equal to each prompt alone.

#include <string>

#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/engine/engine.h"
#include "server/model/llama2c_checkpoint.h"
#include "server/tokenizer/llama2c_vocab.h"
#include "tests/engine/engine_test_util.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

constexpr char kReferenceStory[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One "
    "day, she saw a big, red ball. She wanted to play with it, but it was too high.";

class EngineStoriesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto src = moeserve::testing::TestDataDir() / "models" / "stories260K";
    if (!std::filesystem::exists(src / "stories260K.bin")) return;
    dir_ = new std::string(moeserve::testing::MakeTempDir("engine_stories").string());
    ASSERT_TRUE(ConvertLlama2cCheckpoint((src / "stories260K.bin").string(), *dir_).ok());
    auto vocab = ConvertLlama2cVocab((src / "tok512.bin").string());
    ASSERT_TRUE(vocab.ok()) << vocab.status();
    ASSERT_TRUE(WriteConvertedTokenizer(*vocab, *dir_).ok());
  }

  void SetUp() override { MOESERVE_REQUIRE_TEST_DATA("models/stories260K/stories260K.bin"); }

  std::unique_ptr<Engine> MakeEngine(EngineConfig c = {}) {
    c.model_dir = *dir_;
    c.device = "cpu";
    c.num_threads = 1;
    c.kv_cache_memory_bytes = 4 << 20;
    auto engine = Engine::Create(c);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  static EngineRequest Prompt(const Engine& engine, const std::string& text, int32_t max_tokens) {
    EngineRequest r;
    auto ids = engine.tokenizer()->Encode(text, /*add_special_tokens=*/true);
    EXPECT_TRUE(ids.ok());
    r.prompt_token_ids = *ids;
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = max_tokens;
    return r;
  }

  static std::string* dir_;
};
std::string* EngineStoriesTest::dir_ = nullptr;

TEST_F(EngineStoriesTest, GreedyFromBosWritesTheReferenceStory) {
  auto engine = MakeEngine();
  ASSERT_NE(engine->tokenizer(), nullptr);
  EngineRequest r;
  r.prompt_token_ids = {1};
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = 80;
  const RequestOutput out = moeserve::testing::RunAll(*engine, {r}).at(0);
  EXPECT_EQ(out.text.substr(0, sizeof(kReferenceStory) - 1), kReferenceStory) << out.text;
  auto decoded = engine->tokenizer()->Decode(out.token_ids, /*skip_special_tokens=*/true);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(out.text, *decoded);  // the deltas concatenate to the decoded output
}

TEST_F(EngineStoriesTest, StopStringTruncatesTheText) {
  auto engine = MakeEngine();
  EngineRequest r;
  r.prompt_token_ids = {1};
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = 80;
  r.sampling.stop = {"red ball", "never appears"};
  const RequestOutput out = moeserve::testing::RunAll(*engine, {r}).at(0);
  EXPECT_EQ(out.finish_reason, FinishReason::kStop);
  EXPECT_EQ(out.stop_string, "red ball");
  const std::string story(kReferenceStory);
  EXPECT_EQ(out.text, story.substr(0, story.find("red ball")));
  EXPECT_LT(out.token_ids.size(), 60u);
  EXPECT_EQ(engine->GetMetrics().kv_blocks_used, 0);
}

TEST_F(EngineStoriesTest, BatchedPromptsMatchEachAlone) {
  const std::vector<std::string> prompts = {
      "Once upon a time", "The cat", "Tom and Sue went to the park", "One day, a little bird",
      "Lily was sad because", "The sun", "A big dog ran", "Mom said"};
  EngineConfig c;
  c.max_num_batched_tokens = 16;  // chunked prefill
  c.max_num_seqs = 8;
  auto engine = MakeEngine(c);
  std::vector<EngineRequest> requests;
  for (const std::string& p : prompts) requests.push_back(Prompt(*engine, p, 40));
  const std::vector<RequestOutput> batched = moeserve::testing::RunAll(*engine, requests);

  for (size_t i = 0; i < prompts.size(); ++i) {
    auto alone_engine = MakeEngine();
    const RequestOutput alone = moeserve::testing::RunAll(*alone_engine, {requests[i]}).at(0);
    EXPECT_EQ(batched[i].token_ids, alone.token_ids) << prompts[i];
    EXPECT_EQ(batched[i].text, alone.text) << prompts[i];
    // The deltas continue the prompt's text (a leading space stays).
    std::vector<int32_t> all = requests[i].prompt_token_ids;
    all.insert(all.end(), alone.token_ids.begin(), alone.token_ids.end());
    auto full = engine->tokenizer()->Decode(all, /*skip_special_tokens=*/true);
    auto prompt = engine->tokenizer()->Decode(requests[i].prompt_token_ids, true);
    ASSERT_TRUE(full.ok() && prompt.ok());
    EXPECT_EQ(*prompt + alone.text, *full) << prompts[i];
  }
}

}  // namespace
}  // namespace moeserve

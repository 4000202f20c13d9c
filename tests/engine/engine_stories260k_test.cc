// The engine on a real trained model with a tokenizer: llama2.c's stories260K converted to a
// Hugging Face directory. The reference story, and batched output (chunked prefill) equal to each
// prompt alone. (Text deltas and stop strings are the serving layer's: tests/serving.)

#include <string>

#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "tests/engine/engine_test_util.h"
#include "tests/stories260k_util.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using ::moeserve::testing::kStories260kReferenceStory;

class EngineStoriesTest : public ::testing::Test {
 protected:
  void SetUp() override { MOESERVE_REQUIRE_TEST_DATA("models/stories260K/stories260K.bin"); }

  std::unique_ptr<Engine> MakeEngine(EngineConfig c = {}) {
    c.model_dir = moeserve::testing::Stories260kDir();
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
};

TEST_F(EngineStoriesTest, GreedyFromBosWritesTheReferenceStory) {
  auto engine = MakeEngine();
  ASSERT_NE(engine->tokenizer(), nullptr);
  EngineRequest r;
  r.prompt_token_ids = {1};
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = 80;
  const RequestOutput out = moeserve::testing::RunAll(*engine, {r}).at(0);
  auto decoded = engine->tokenizer()->Decode(out.token_ids, /*skip_special_tokens=*/true);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->substr(0, sizeof(kStories260kReferenceStory) - 1), kStories260kReferenceStory) << *decoded;
}

TEST_F(EngineStoriesTest, BatchedPromptsMatchEachAlone) {
  const std::vector<std::string> prompts = {"Once upon a time",
                                            "The cat",
                                            "Tom and Sue went to the park",
                                            "One day, a little bird",
                                            "Lily was sad because",
                                            "The sun",
                                            "A big dog ran",
                                            "Mom said"};
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
    EXPECT_FALSE(alone.token_ids.empty()) << prompts[i];
  }
}

}  // namespace
}  // namespace moeserve

// Acceptance for architectures added from transformers: models whose configurations differ from
// the parity fixtures (tests/fixtures/models/*_greedy, tools/make_test_models.py GREEDY_CASES)
// continue every prompt with exactly transformers' greedy ids, each request alone and all of them
// batched in one engine with chunked prefill.

#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/common/mapped_file.h"
#include "tests/engine/engine_test_util.h"

namespace moeserve::testing {
namespace {

struct GreedyCase {
  std::vector<int32_t> prompt, greedy;
};

std::vector<GreedyCase> LoadCases(const std::filesystem::path& dir) {
  auto text = ReadFileToString((dir / "greedy.json").string());
  EXPECT_TRUE(text.ok()) << text.status();
  std::vector<GreedyCase> cases;
  if (!text.ok()) return cases;
  const nlohmann::json j = nlohmann::json::parse(*text);
  for (const auto& c : j.at("cases")) {
    cases.push_back({c.at("prompt_ids").get<std::vector<int32_t>>(), c.at("greedy_ids").get<std::vector<int32_t>>()});
  }
  return cases;
}

EngineRequest Request(const GreedyCase& c) {
  EngineRequest r;
  r.prompt_token_ids = c.prompt;
  r.sampling = Greedy(static_cast<int32_t>(c.greedy.size()));
  return r;
}

class TransformersGreedyTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    cases_ = LoadCases(FixturesDir() / "models" / GetParam());
    ASSERT_GE(cases_.size(), 2u);
  }
  std::vector<GreedyCase> cases_;
};

TEST_P(TransformersGreedyTest, EachPromptAlone) {
  for (size_t i = 0; i < cases_.size(); ++i) {
    auto engine = MakeFixtureEngine(GetParam(), RoomyConfig());
    ASSERT_NE(engine, nullptr);
    const std::vector<RequestOutput> out = RunAll(*engine, {Request(cases_[i])});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].token_ids, cases_[i].greedy) << "prompt " << i;
  }
}

TEST_P(TransformersGreedyTest, AllPromptsBatchedWithChunkedPrefill) {
  EngineConfig config = RoomyConfig();
  config.max_num_batched_tokens = 8;  // prompts of 7 and 12 tokens arrive in chunks beside decodes
  config.max_num_seqs = 8;
  auto engine = MakeFixtureEngine(GetParam(), config);
  ASSERT_NE(engine, nullptr);
  std::vector<EngineRequest> requests;
  for (const GreedyCase& c : cases_) requests.push_back(Request(c));
  const std::vector<RequestOutput> out = RunAll(*engine, std::move(requests));
  ASSERT_EQ(out.size(), cases_.size());
  for (size_t i = 0; i < cases_.size(); ++i) EXPECT_EQ(out[i].token_ids, cases_[i].greedy) << "prompt " << i;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TransformersGreedyTest, ::testing::Values("qwen3_greedy", "qwen3_moe_greedy"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace moeserve::testing

// Renders every conversation of tests/fixtures/tokenizer/chat_*.jsonl (made by
// tools/tokenizer/make_chat_fixtures.py with transformers' apply_chat_template) and requires the
// exact same string, or an error where transformers raised one.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/tokenizer/chat_template.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using Json = nlohmann::ordered_json;

std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<Json> ReadFixture(const std::string& name) {
  std::ifstream in(testing::FixturesDir() / "tokenizer" / ("chat_" + name + ".jsonl"));
  std::vector<Json> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(Json::parse(line));
  return lines;
}

// The model templates come from their tokenizer directory; the others from
// tests/fixtures/tokenizer/chat_templates/, with the deepseek_v3 special tokens, as the generator.
absl::StatusOr<TokenizerChatTemplate> LoadTemplate(const std::string& name) {
  const auto tokenizers = testing::TestDataDir() / "tokenizers";
  if (name == "deepseek_v3" || name == "qwen3") {
    return TokenizerChatTemplate::FromDirectory((tokenizers / name).string());
  }
  Json config = Json::parse(ReadText(tokenizers / "deepseek_v3" / "tokenizer_config.json"));
  config["chat_template"] = ReadText(testing::FixturesDir() / "tokenizer" / "chat_templates" / (name + ".jinja"));
  return TokenizerChatTemplate::FromTokenizerConfig(config.dump());
}

class ChatTemplateFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateFixtureTest, MatchesTransformers) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/deepseek_v3/tokenizer_config.json");
  const std::vector<Json> lines = ReadFixture(GetParam());
  ASSERT_GE(lines.size(), 101u) << "fixture missing or short";
  auto tmpl = LoadTemplate(GetParam());
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  int rendered = 0, errors = 0, mismatches = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const Json& c = lines[i];
    ChatRequest request;
    request.messages = c["messages"];
    request.tools = c["tools"];
    request.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    request.extra = c["extra"];
    const absl::StatusOr<std::string> out = tmpl->Apply(request);
    if (c.contains("error")) {
      ++errors;
      if (out.ok()) {
        ++mismatches;
        ADD_FAILURE() << "case " << i << ": transformers raised " << c["error"] << " but we rendered:\n" << *out;
      }
      continue;
    }
    ++rendered;
    if (!out.ok()) {
      ++mismatches;
      ADD_FAILURE() << "case " << i << ": " << out.status() << "\nmessages: " << c["messages"].dump();
      continue;
    }
    const std::string expected = c["expected"].get<std::string>();
    if (*out != expected) {
      ++mismatches;
      ADD_FAILURE() << "case " << i << " differs\nexpected: " << Json(expected).dump()
                    << "\nactual:   " << Json(*out).dump();
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GE(rendered, 100);
  std::printf("chat_%s: %d rendered + %d expected errors, %d mismatches\n", GetParam().c_str(), rendered, errors,
              mismatches);
}

INSTANTIATE_TEST_SUITE_P(Templates, ChatTemplateFixtureTest,
                         ::testing::Values("deepseek_v3", "qwen3", "deepseek_r1", "llama3", "features"));

}  // namespace
}  // namespace moeserve

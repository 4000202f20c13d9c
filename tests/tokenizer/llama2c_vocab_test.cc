#include "server/tokenizer/llama2c_vocab.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/common/mapped_file.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

constexpr char kTok512[] = "models/stories260K/tok512.bin";

std::string Tok512Path() { return (testing::TestDataDir() / kTok512).string(); }

// A tiny llama2.c vocabulary: <unk>, <s>, </s>, 256 byte tokens, then `pieces` with descending
// scores.
std::string MakeVocab(const std::vector<std::string>& pieces) {
  std::string bin;
  auto put = [&bin](const void* p, size_t n) { bin.append(static_cast<const char*>(p), n); };
  const int32_t max_len = 16;
  put(&max_len, 4);
  auto add = [&put](const std::string& s, float score) {
    const int32_t len = static_cast<int32_t>(s.size());
    put(&score, 4);
    put(&len, 4);
    put(s.data(), s.size());
  };
  add("<unk>", 0);
  add("\n<s>\n", 0);
  add("\n</s>\n", 0);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    add(buf, 0);
  }
  float score = 0;
  for (const std::string& p : pieces) add(p, score--);
  return bin;
}

TEST(Llama2cVocabTest, ConvertsStories260KVocabulary) {
  MOESERVE_REQUIRE_TEST_DATA(kTok512);
  auto converted = ConvertLlama2cVocab(Tok512Path());
  ASSERT_TRUE(converted.ok()) << converted.status();
  const auto tok = nlohmann::json::parse(converted->tokenizer_json);
  const auto& vocab = tok["model"]["vocab"];
  EXPECT_EQ(vocab.size(), 512u);
  EXPECT_EQ(vocab["<unk>"], 0);
  EXPECT_EQ(vocab["<s>"], 1);
  EXPECT_EQ(vocab["</s>"], 2);
  EXPECT_EQ(vocab["<0x0A>"], 13);
  EXPECT_EQ(vocab["\xE2\x96\x81t"], 259);  // " t" with the space as "▁"
  EXPECT_TRUE(tok["model"]["byte_fallback"].get<bool>());
  const auto& merges = tok["model"]["merges"];
  ASSERT_FALSE(merges.empty());
  EXPECT_EQ(merges[0], nlohmann::json::array({"\xE2\x96\x81", "t"}));
  EXPECT_EQ(tok["added_tokens"].size(), 3u);

  const auto config = nlohmann::json::parse(converted->tokenizer_config_json);
  EXPECT_EQ(config["add_bos_token"], true);
  EXPECT_EQ(config["add_eos_token"], false);
  EXPECT_EQ(config["bos_token"], "<s>");
  EXPECT_EQ(config["eos_token"], "</s>");
  EXPECT_EQ(config["model_max_length"], 512);
}

TEST(Llama2cVocabTest, MergesEverySplitRankedByScore) {
  // "ab" (score -0) > "bc" (-1) > "abc" (-2) ; "abc" splits as a+bc and ab+c (ties: earlier split first).
  auto converted = ConvertLlama2cVocabBytes(MakeVocab({"ab", "bc", "abc", "a", "b", "c", " "}));
  ASSERT_TRUE(converted.ok()) << converted.status();
  const auto merges = nlohmann::json::parse(converted->tokenizer_json)["model"]["merges"];
  const auto pair = [](const char* l, const char* r) { return nlohmann::json::array({l, r}); };
  EXPECT_EQ(merges, nlohmann::json::array({pair("a", "b"), pair("b", "c"), pair("a", "bc"), pair("ab", "c")}));
}

TEST(Llama2cVocabTest, IsDeterministic) {
  const std::string bin = MakeVocab({"ab", "a", "b", " a", " "});
  auto a = ConvertLlama2cVocabBytes(bin);
  auto b = ConvertLlama2cVocabBytes(bin);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokenizer_json, b->tokenizer_json);
  EXPECT_EQ(a->tokenizer_config_json, b->tokenizer_config_json);
}

TEST(Llama2cVocabTest, RejectsTruncatedFile) {
  std::string bin = MakeVocab({"ab", "a", "b"});
  bin.resize(bin.size() - 1);
  EXPECT_EQ(ConvertLlama2cVocabBytes(bin).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConvertLlama2cVocabBytes("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Llama2cVocabTest, RejectsMissingFile) { EXPECT_FALSE(ConvertLlama2cVocab("/nonexistent/tok.bin").ok()); }

}  // namespace
}  // namespace moeserve

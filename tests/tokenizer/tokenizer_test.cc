#include "server/tokenizer/tokenizer.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace moeserve {
namespace {

std::unique_ptr<Tokenizer> LoadShared(const std::string& name) {
  auto t = Tokenizer::FromDirectory((testing::TestDataDir() / "tokenizers" / name).string());
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(TokenizerTest, DeepSeekV3Metadata) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/deepseek_v3");
  auto tok = LoadShared("deepseek_v3");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 128815);
  EXPECT_EQ(tok->bos_token_id(), 0);
  EXPECT_EQ(tok->eos_token_id(), 1);
  EXPECT_TRUE(tok->IsSpecial(0));
  EXPECT_FALSE(tok->IsSpecial(128814));  // <｜tool▁sep｜> is added but not special
  EXPECT_FALSE(tok->IsSpecial(100));
  EXPECT_EQ(tok->TokenToId("<｜tool▁sep｜>"), 128814);
  EXPECT_EQ(tok->IdToToken(0), "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(tok->TokenToId("no such token"), std::nullopt);
  EXPECT_EQ(tok->IdToToken(-1), std::nullopt);
  EXPECT_EQ(tok->IdToToken(1 << 30), std::nullopt);
  // add_bos_token: true in the config.
  auto ids = tok->Encode("Hello");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->front(), 0);
}

TEST(TokenizerTest, Qwen3Metadata) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  auto tok = LoadShared("qwen3");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 151669);
  EXPECT_EQ(tok->bos_token_id(), std::nullopt);
  EXPECT_EQ(tok->eos_token_id(), 151645);
  EXPECT_EQ(tok->TokenToId("<think>"), 151667);
  auto ids = tok->Encode("a<|im_start|>b");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{64, 151644, 65}));
}

TEST(TokenizerTest, RejectsInvalidUtf8) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  auto tok = LoadShared("qwen3");
  ASSERT_NE(tok, nullptr);
  for (const char* bad : {"abc\xFF", "\xC3", "\xED\xA0\x80", "x\xC0\xAFy"}) {
    auto ids = tok->Encode(bad);
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(TokenizerTest, RejectsUnsupportedComponents) {
  const std::string base = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, )";
  EXPECT_TRUE(Tokenizer::FromJson(base + R"("normalizer": null})", "").ok());
  EXPECT_EQ(Tokenizer::FromJson(base + R"("normalizer": {"type": "Precompiled"}})", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Tokenizer::FromJson(base + R"("pre_tokenizer": {"type": "Bert"}})", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Tokenizer::FromJson("not json", "").ok());
  EXPECT_FALSE(Tokenizer::FromJson(R"({"model": {"type": "Unigram"}})", "").ok());
  EXPECT_FALSE(Tokenizer::FromJson(base + R"("pre_tokenizer": {"type": "Split",
      "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}})",
                                   "")
                   .ok());
}

}  // namespace
}  // namespace moeserve

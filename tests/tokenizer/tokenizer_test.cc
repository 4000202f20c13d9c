#include "server/tokenizer/tokenizer.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

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
  EXPECT_EQ(Tokenizer::FromJson(base + R"("normalizer": {"type": "Precompiled"}})", "")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Tokenizer::FromJson(base + R"("pre_tokenizer": {"type": "Bert"}})", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Tokenizer::FromJson("not json", "").ok());
  EXPECT_FALSE(Tokenizer::FromJson(R"({"model": {"type": "Unigram"}})", "").ok());
  EXPECT_FALSE(Tokenizer::FromJson(base + R"("pre_tokenizer": {"type": "Split",
      "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}})", "").ok());
}

std::vector<std::string> ShareGptPrompts() {
  std::ifstream in(testing::TestDataDir() / "prompts/sharegpt_v3_filtered_500.json");
  const auto json = nlohmann::json::parse(in);
  std::vector<std::string> prompts;
  for (const auto& item : json) {
    for (const auto& turn : item["conversations"]) {
      prompts.push_back(turn["value"].get<std::string>());
      break;
    }
  }
  return prompts;
}

TEST(TokenizerTest, ConcurrentEncodeMatchesSerial) {
  MOESERVE_REQUIRE_TEST_DATA("prompts/sharegpt_v3_filtered_500.json");
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/deepseek_v3");
  auto tok = LoadShared("deepseek_v3");
  ASSERT_NE(tok, nullptr);
  const auto prompts = ShareGptPrompts();
  std::vector<std::vector<int32_t>> serial;
  for (const auto& p : prompts) serial.push_back(tok->Encode(p).value_or(std::vector<int32_t>()));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < prompts.size(); i += 2) {
        if (tok->Encode(prompts[i]).value_or(std::vector<int32_t>()) != serial[i]) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

// Prints single-thread encode throughput on the ShareGPT prompts (not a pass/fail criterion).
TEST(TokenizerTest, EncodeThroughput) {
  MOESERVE_REQUIRE_TEST_DATA("prompts/sharegpt_v3_filtered_500.json");
  const auto prompts = ShareGptPrompts();
  size_t bytes = 0;
  for (const auto& p : prompts) bytes += p.size();
  for (const char* name : {"deepseek_v3", "qwen3"}) {
    if (!std::filesystem::exists(testing::TestDataDir() / "tokenizers" / name)) continue;
    auto tok = LoadShared(name);
    ASSERT_NE(tok, nullptr);
    for (const char* pass : {"cold cache", "warm cache"}) {
      size_t tokens = 0;
      const auto start = std::chrono::steady_clock::now();
      for (const auto& p : prompts) tokens += tok->Encode(p, false).value_or(std::vector<int32_t>()).size();
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("%s (%s): %zu prompts, %zu bytes, %zu tokens in %.3f s: %.2f M tokens/s, %.1f MB/s\n",
                  name, pass, prompts.size(), bytes, tokens, s, tokens / s / 1e6, bytes / s / 1e6);
    }
  }
}

}  // namespace
}  // namespace moeserve

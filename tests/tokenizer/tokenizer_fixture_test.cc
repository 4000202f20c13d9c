// Compares Encode/Decode with the Hugging Face `tokenizers` reference in tests/fixtures/tokenizer/
// (made by tools/tokenizer/make_fixtures.py): 100% exact match required.
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/tokenizer/incremental_detokenizer.h"
#include "server/tokenizer/llama2c_vocab.h"
#include "server/tokenizer/tokenizer.h"
#include "server/tokenizer/unicode.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using Json = nlohmann::json;

std::unique_ptr<Tokenizer> Load(const std::string& name) {
  if (name == "stories260k") {
    auto converted = ConvertLlama2cVocab((testing::TestDataDir() / "models/stories260K/tok512.bin").string());
    EXPECT_TRUE(converted.ok()) << converted.status();
    if (!converted.ok()) return nullptr;
    auto t = Tokenizer::FromJson(converted->tokenizer_json, converted->tokenizer_config_json);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }
  auto t = Tokenizer::FromDirectory((testing::TestDataDir() / "tokenizers" / name).string());
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

std::vector<Json> ReadFixture(const std::string& name) {
  std::ifstream in(testing::FixturesDir() / "tokenizer" / (name + ".jsonl"));
  std::vector<Json> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(Json::parse(line));
  return lines;
}

std::string Show(const std::vector<int32_t>& ids) { return Json(ids).dump(); }

void CheckFixture(const std::string& name) {
  std::unique_ptr<Tokenizer> tok = Load(name);
  ASSERT_NE(tok, nullptr);
  const std::vector<Json> lines = ReadFixture(name);
  ASSERT_GT(lines.size(), 3000u) << "fixture missing for " << name;
  const Json& header = lines[0];
  const auto prefix = header["prefix"].get<std::vector<int32_t>>();
  const auto suffix = header["suffix"].get<std::vector<int32_t>>();

  int encode_ok = 0, encode_total = 0, decode_ok = 0, decode_total = 0, reported = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const Json& c = lines[i];
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    if (c.contains("text") && c["text"].is_string()) {
      const std::string text = c["text"].get<std::string>();
      std::vector<int32_t> special = prefix;
      special.insert(special.end(), ids.begin(), ids.end());
      special.insert(special.end(), suffix.begin(), suffix.end());
      if (c.contains("special")) special = c["special"].get<std::vector<int32_t>>();
      auto plain = tok->Encode(text, /*add_special_tokens=*/false);
      auto with = tok->Encode(text, /*add_special_tokens=*/true);
      ++encode_total;
      const bool ok = plain.ok() && with.ok() && *plain == ids && *with == special;
      encode_ok += ok;
      if (!ok && reported++ < 10) {
        ADD_FAILURE() << name << " encode " << Json(text).dump() << "\n  want " << Show(ids) << "\n  got  "
                      << (plain.ok() ? Show(*plain) : plain.status().ToString());
      }
    }
    const std::string text = c.contains("text") && c["text"].is_string() ? c["text"] : "";
    const std::string decode = c.value("decode", text);
    const std::string decode_skip = c.value("decode_skip", decode);
    auto d = tok->Decode(ids, /*skip_special_tokens=*/false);
    auto ds = tok->Decode(ids, /*skip_special_tokens=*/true);
    ++decode_total;
    const bool ok = d.ok() && ds.ok() && *d == decode && *ds == decode_skip;
    decode_ok += ok;
    if (!ok && reported++ < 10) {
      ADD_FAILURE() << name << " decode " << Show(ids) << "\n  want " << Json(decode).dump() << " / "
                    << Json(decode_skip).dump() << "\n  got  " << (d.ok() ? Json(*d).dump() : d.status().ToString())
                    << " / " << (ds.ok() ? Json(*ds).dump() : ds.status().ToString());
    }
  }
  std::printf("%s: encode %d/%d, decode %d/%d exact\n", name.c_str(), encode_ok, encode_total, decode_ok, decode_total);
  EXPECT_EQ(encode_ok, encode_total);
  EXPECT_EQ(decode_ok, decode_total);
}

// Fed one id at a time, the incremental detokenizer emits valid UTF-8 deltas whose concatenation
// (plus Flush) is the full decode.
void CheckIncremental(const std::string& name) {
  std::unique_ptr<Tokenizer> tok = Load(name);
  ASSERT_NE(tok, nullptr);
  const std::vector<Json> lines = ReadFixture(name);
  ASSERT_GT(lines.size(), 3000u);
  int ok_count = 0, total = 0, reported = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const auto ids = lines[i]["ids"].get<std::vector<int32_t>>();
    for (bool skip : {false, true}) {
      IncrementalDetokenizer detok(tok.get(), {}, skip);
      std::string streamed;
      bool valid = true;
      for (int32_t id : ids) {
        const std::string delta = detok.Step(id);
        valid = valid && IsValidUtf8(delta);
        streamed += delta;
      }
      streamed += detok.Flush();
      const std::string full = tok->Decode(ids, skip).value();
      ++total;
      const bool ok = valid && streamed == full;
      ok_count += ok;
      if (!ok && reported++ < 10) {
        ADD_FAILURE() << name << " incremental " << Show(ids) << " skip=" << skip << "\n  want " << Json(full).dump()
                      << "\n  got  " << Json(Utf8Lossy(streamed)).dump();
      }
    }
  }
  std::printf("%s: incremental %d/%d exact\n", name.c_str(), ok_count, total);
  EXPECT_EQ(ok_count, total);
}

TEST(TokenizerFixtureTest, DeepSeekV3) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/deepseek_v3");
  CheckFixture("deepseek_v3");
}

TEST(TokenizerFixtureTest, Qwen3) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  CheckFixture("qwen3");
}

TEST(TokenizerFixtureTest, Stories260K) {
  MOESERVE_REQUIRE_TEST_DATA("models/stories260K/tok512.bin");
  CheckFixture("stories260k");
}

// Four threads encode every fixture text, each in its own order, sharing one tokenizer (and its
// caches): every result must be the reference ids, and no call may fail.
TEST(TokenizerFixtureTest, ConcurrentEncodeMatchesTheReference) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/deepseek_v3");
  std::unique_ptr<Tokenizer> tok = Load("deepseek_v3");
  ASSERT_NE(tok, nullptr);
  std::vector<std::pair<std::string, std::vector<int32_t>>> cases;
  for (const Json& c : ReadFixture("deepseek_v3")) {
    if (c.contains("text") && c["text"].is_string()) {
      cases.emplace_back(c["text"].get<std::string>(), c["ids"].get<std::vector<int32_t>>());
    }
  }
  ASSERT_GT(cases.size(), 3000u);
  constexpr int kThreads = 4;
  std::vector<int> mismatches(kThreads), errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t k = 0; k < cases.size(); ++k) {
        // Each thread walks the cases in its own order (stride 2t + 1 from offset 997t), so the
        // threads encode different texts at the same time.
        const size_t i = (k * (2 * t + 1) + t * 997) % cases.size();
        auto ids = tok->Encode(cases[i].first, /*add_special_tokens=*/false);
        if (!ids.ok()) {
          ++errors[t];
        } else if (*ids != cases[i].second) {
          ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], 0) << "thread " << t;
    EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  }
}

TEST(IncrementalDetokenizerTest, DeepSeekV3) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/deepseek_v3");
  CheckIncremental("deepseek_v3");
}

TEST(IncrementalDetokenizerTest, Qwen3) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  CheckIncremental("qwen3");
}

TEST(IncrementalDetokenizerTest, Stories260K) {
  MOESERVE_REQUIRE_TEST_DATA("models/stories260K/tok512.bin");
  CheckIncremental("stories260k");
}

TEST(IncrementalDetokenizerTest, NeverReemitsPrompt) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  std::unique_ptr<Tokenizer> tok = Load("qwen3");
  ASSERT_NE(tok, nullptr);
  const auto prompt = tok->Encode("The answer is", false).value();
  const auto gen = tok->Encode(" 42 \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x92\xBB done", false).value();
  IncrementalDetokenizer detok(tok.get(), prompt, /*skip_special_tokens=*/true);
  std::string streamed;
  for (int32_t id : gen) {
    const std::string delta = detok.Step(id);
    EXPECT_TRUE(IsValidUtf8(delta));
    streamed += delta;
  }
  streamed += detok.Flush();
  EXPECT_EQ(streamed, " 42 \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x92\xBB done");
}

}  // namespace
}  // namespace moeserve

// Runs the bodies of the tokenizer fuzz targets without libFuzzer over their seed corpora
// (tests/fuzz/corpus/tokenizer_*/), every committed chat-template fixture, and prefixes and
// one-byte mutations of each seed, so CI checks the targets' invariants on any compiler.

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/tokenizer_fuzz.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> ReadDir(const fs::path& dir) {
  std::vector<std::string> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    files.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return files;
}

fs::path CorpusDir(const char* name) {
  return fs::path(MOESERVE_SOURCE_DIR) / "tests/fuzz/corpus" / (std::string("tokenizer_") + name);
}

// Calls `body` on `seed`, on prefixes at `stride`, and on byte replacements at `stride`.
template <typename F>
void Mutations(const std::string& seed, size_t stride, const F& body) {
  body(seed);
  for (size_t len = 0; len < seed.size(); len += stride) body(seed.substr(0, len));
  for (size_t i = 0; i < seed.size(); i += stride) {
    for (const char c : {'\0', '\xff', '{', '}', '%', '#', '-', '"', '\'', '(', '|', '\xc3'}) {
      std::string mutated = seed;
      mutated[i] = c;
      body(mutated);
    }
  }
}

TEST(TokenizerFuzzReplay, ChatTemplateCorpusPrefixesAndMutations) {
  std::vector<std::string> seeds = ReadDir(CorpusDir("chat_template"));
  ASSERT_GE(seeds.size(), 10u);
  for (const std::string& seed : seeds) {
    Mutations(seed, std::max<size_t>(1, seed.size() / 300), [](const std::string& s) { fuzz::FuzzChatTemplate(s); });
  }
}

TEST(TokenizerFuzzReplay, TokenizerLoadCorpusPrefixesAndMutations) {
  std::vector<std::string> seeds = ReadDir(CorpusDir("load"));
  ASSERT_GE(seeds.size(), 2u);
  for (const std::string& seed : seeds) {
    Mutations(seed, std::max<size_t>(1, seed.size() / 60), [](const std::string& s) { fuzz::FuzzTokenizerLoad(s); });
  }
}

TEST(TokenizerFuzzReplay, EncodeCorpusPrefixesAndMutations) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/qwen3/tokenizer.json");
  setenv("MOESERVE_FUZZ_TOKENIZER", (testing::TestDataDir() / "tokenizers/qwen3").c_str(), 1);
  const Tokenizer& tokenizer = fuzz::FuzzTokenizer(MOESERVE_SOURCE_DIR);
  std::vector<std::string> seeds = ReadDir(CorpusDir("encode"));
  ASSERT_GE(seeds.size(), 20u);
  for (const std::string& seed : seeds) {
    Mutations(seed, std::max<size_t>(1, seed.size() / 40),
              [&](const std::string& s) { fuzz::FuzzTokenizerEncode(tokenizer, s); });
  }
}

}  // namespace
}  // namespace moeserve

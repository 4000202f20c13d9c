// Token masks against a brute-force reference: every token is tried on the matcher itself
// (AcceptToken, then Rollback), along random walks through grammars of every kind, with small
// synthetic vocabularies and the real DeepSeek-V3, Qwen3 and default-model tokenizers.

#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/structured/gbnf_parser.h"
#include "server/structured/matcher.h"
#include "server/structured/regex_parser.h"
#include "server/structured/vocabulary.h"
#include "server/tokenizer/tokenizer.h"
#include "tests/structured/structured_test_util.h"
#include "tests/test_util.h"

namespace moeserve::structured {
namespace {

bool Bit(const std::vector<uint32_t>& mask, int32_t id) { return (mask[id >> 5] >> (id & 31)) & 1u; }

Grammar MustParseGbnf(const std::string& text) {
  absl::StatusOr<Grammar> g = ParseGbnf(text);
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? *std::move(g) : Grammar{};
}

Grammar RegexGrammar(const std::string& pattern) {
  absl::StatusOr<Expr> e = ParseRegex(pattern);
  EXPECT_TRUE(e.ok()) << e.status();
  Grammar g;
  g.rules.push_back({"root", e.ok() ? *std::move(e) : Empty()});
  return g;
}

// Grammars that exercise inlined DFAs, recursion (contexts and run-time checks), ambiguity
// (several stacks) and bounded repetition.
std::vector<std::pair<std::string, Grammar>> TestGrammars() {
  std::vector<std::pair<std::string, Grammar>> out;
  out.emplace_back("json", MustParseGbnf(R"G(
root   ::= obj
val    ::= obj | arr | str | num | "true" | "false" | "null"
obj    ::= "{" ( str ":" ws val ("," ws str ":" ws val)* )? "}"
arr    ::= "[" ( val ("," ws val)* )? "]"
str    ::= "\"" ( [^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\""
num    ::= "-"? ("0" | [1-9] [0-9]*) ("." [0-9]+)?
ws     ::= " "?
)G"));
  out.emplace_back("nested-rules", MustParseGbnf(R"G(
root ::= item ("," item)* "."
item ::= word | "(" root ")" | word "=" num
word ::= [a-z]+
num ::= [0-9]{1,3}
)G"));
  out.emplace_back("ambiguous", MustParseGbnf(R"G(
root ::= a a | a "x" b
a ::= [a-c]* | "ab"
b ::= "y"+ root?
)G"));
  out.emplace_back("regex-email", RegexGrammar(R"([a-z0-9._%+-]{1,12}@[a-z0-9-]{1,8}(\.[a-z]{2,4}){1,2})"));
  out.emplace_back("regex-unicode", RegexGrammar("(\\w+ ){0,3}[\u00e0-\u00ff\u4e00-\u4e10]{2,5}[.!?]"));
  out.emplace_back("text-lines", MustParseGbnf("root ::= (\"- \" [^\\n]{1,20} \"\\n\"){1,3}\n"));
  return out;
}

// Walks `steps` random allowed tokens from the start, checking every mask against AcceptToken on
// each token of `check` (all tokens when empty).
void CheckWalks(const std::shared_ptr<const TokenVocabulary>& vocab, const std::string& name, const Grammar& grammar,
                int walks, int steps, int sample, uint32_t seed) {
  auto compiled = CompiledGrammar::Compile(grammar, vocab);
  ASSERT_TRUE(compiled.ok()) << name << ": " << compiled.status();
  std::mt19937 rng(seed);
  std::vector<uint32_t> mask(vocab->mask_words());
  for (int w = 0; w < walks; ++w) {
    GrammarMatcher matcher(*compiled, 1);
    std::string text;
    for (int step = 0; step < steps && !matcher.IsTerminated(); ++step) {
      matcher.FillNextTokenBitmask(mask.data());
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < vocab->mask_size(); ++id) {
        if (Bit(mask, id)) allowed.push_back(id);
      }
      ASSERT_FALSE(allowed.empty()) << name << ": empty mask after \"" << text << "\"";
      auto check = [&](int32_t id) {
        const bool ok = matcher.AcceptToken(id);
        if (ok) matcher.Rollback(1);
        const std::string* bytes = vocab->bytes(id);
        ASSERT_EQ(Bit(mask, id), ok) << name << ": token " << id << " \"" << (bytes ? *bytes : "<stop>")
                                     << "\" after \"" << text << "\"";
      };
      if (sample <= 0 || sample >= vocab->mask_size()) {
        for (int32_t id = 0; id < vocab->mask_size(); ++id) check(id);
      } else {
        for (int k = 0; k < sample; ++k) check(static_cast<int32_t>(rng() % vocab->mask_size()));
        for (int k = 0; k < 200 && k < static_cast<int>(allowed.size()); ++k) check(allowed[rng() % allowed.size()]);
      }
      if (::testing::Test::HasFatalFailure()) return;
      const int32_t next = allowed[rng() % allowed.size()];
      ASSERT_TRUE(matcher.AcceptToken(next));
      if (const std::string* b = vocab->bytes(next)) text += *b;
    }
  }
}

// A small vocabulary with single bytes, multi-byte pieces crossing rule boundaries, and tokens
// that close several JSON levels at once.
std::shared_ptr<const TokenVocabulary> SyntheticVocab() {
  std::vector<std::optional<std::string>> bytes;
  for (int b = 0; b < 256; ++b) bytes.push_back(std::string(1, static_cast<char>(b)));
  for (const char* piece :
       {"\"}",  "\"}}",  "\"]}", "\"},",     "\":",      "\": ",     "\",\"", "}]", "]}",  "},{\"", "null",
        "true", "false", "ab",   "abc",      "a,",       "(a",       "),",    "x=", "=12", "12.",   "- ",
        "\n- ", "@a",    ".com", "\xC3\xA9", "\xE4\xB8", "\x80\x81", "y(",    "yy", "a b", "\\u00", "\\n"}) {
    bytes.push_back(std::string(piece));
  }
  bytes.push_back(std::nullopt);  // a special token
  const int32_t stop = static_cast<int32_t>(bytes.size());
  bytes.push_back(std::nullopt);
  auto v = TokenVocabulary::Create(std::move(bytes), {.mask_size = stop + 7, .stop_ids = {stop}});
  EXPECT_TRUE(v.ok()) << v.status();
  return *v;
}

TEST(TokenMask, MatchesBruteForceOnSyntheticVocabulary) {
  auto vocab = SyntheticVocab();
  uint32_t seed = 1;
  for (const auto& [name, grammar] : TestGrammars()) {
    CheckWalks(vocab, name, grammar, /*walks=*/6, /*steps=*/40, /*sample=*/0, seed++);
    if (HasFatalFailure()) return;
  }
}

std::shared_ptr<const TokenVocabulary> TokenizerVocab(const std::filesystem::path& dir) {
  auto tokenizer = Tokenizer::FromDirectory(dir.string());
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  if (!tokenizer.ok()) return nullptr;
  std::vector<int32_t> stops;
  if ((*tokenizer)->eos_token_id().has_value()) stops.push_back(*(*tokenizer)->eos_token_id());
  auto vocab = TokenVocabulary::FromTokenizer(**tokenizer, {.stop_ids = stops});
  EXPECT_TRUE(vocab.ok()) << vocab.status();
  return vocab.ok() ? *vocab : nullptr;
}

TEST(TokenMask, MatchesBruteForceOnDefaultModelTokenizer) {
  auto vocab = TokenizerVocab(std::filesystem::path(MOESERVE_SOURCE_DIR) / "models/default");
  ASSERT_NE(vocab, nullptr);
  uint32_t seed = 11;
  for (const auto& [name, grammar] : TestGrammars()) {
    CheckWalks(vocab, name, grammar, 4, 40, 0, seed++);
    if (HasFatalFailure()) return;
  }
}

TEST(TokenMask, MatchesBruteForceOnDeepSeekV3Tokenizer) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/deepseek_v3/tokenizer.json");
  auto vocab = TokenizerVocab(moeserve::testing::TestDataDir() / "tokenizers/deepseek_v3");
  ASSERT_NE(vocab, nullptr);
  uint32_t seed = 21;
  for (const auto& [name, grammar] : TestGrammars()) {
    CheckWalks(vocab, name, grammar, 2, 12, 3000, seed++);
    if (HasFatalFailure()) return;
  }
}

TEST(TokenMask, MatchesBruteForceOnQwen3Tokenizer) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/qwen3/tokenizer.json");
  auto vocab = TokenizerVocab(moeserve::testing::TestDataDir() / "tokenizers/qwen3");
  ASSERT_NE(vocab, nullptr);
  const auto grammars = TestGrammars();
  CheckWalks(vocab, grammars[0].first, grammars[0].second, 2, 12, 3000, 31);
}

TEST(TokenVocabulary, TrieCoversSortedTokens) {
  auto vocab = SyntheticVocab();
  const auto trie = vocab->trie();
  int32_t tokens = 0;
  for (size_t i = 1; i < trie.size(); ++i) {
    const auto& node = trie[i];
    tokens += node.tokens_end - node.tokens_begin;
    for (int32_t p = node.tokens_begin; p < node.tokens_end; ++p) {
      ASSERT_EQ(static_cast<int32_t>(vocab->sorted_bytes(p).size()), node.depth);
    }
    ASSERT_LE(node.tokens_end, node.subtree_end);
    ASSERT_LE(node.end, static_cast<int32_t>(trie.size()));
    for (int32_t c = static_cast<int32_t>(i) + 1; c < node.end; ++c) ASSERT_GT(trie[c].depth, node.depth);
  }
  EXPECT_EQ(tokens, vocab->num_sorted());
  EXPECT_EQ(trie[0].subtree_end, vocab->num_sorted());
  // Stop and special ids are never matched by bytes.
  EXPECT_EQ(vocab->bytes(vocab->stop_ids()[0]), nullptr);
}

}  // namespace
}  // namespace moeserve::structured

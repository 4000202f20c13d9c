// Regex parsing, matching against std::regex on random patterns, and the limits that keep hostile
// patterns cheap.

#include "server/structured/regex_parser.h"

#include <random>
#include <regex>
#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/structured/structured_test_util.h"

namespace moeserve::structured {
namespace {

using testing::CompileBytes;
using ::testing::HasSubstr;
using testing::IsPrefix;
using testing::Matches;

absl::StatusOr<std::shared_ptr<const CompiledGrammar>> CompileRegex(const std::string& pattern,
                                                                    const CompileLimits& limits = {}) {
  absl::StatusOr<Expr> e = ParseRegex(pattern);
  if (!e.ok()) return e.status();
  Grammar g;
  g.rules.push_back({"root", *std::move(e)});
  return CompiledGrammar::Compile(g, testing::ByteVocab(), limits);
}

std::shared_ptr<const CompiledGrammar> Compile(const std::string& pattern) {
  auto g = CompileRegex(pattern);
  EXPECT_TRUE(g.ok()) << pattern << ": " << g.status();
  return g.ok() ? *g : nullptr;
}

TEST(Regex, Basics) {
  auto g = Compile(R"(^[a-c]+\d{2,3}(?:x|yz)?\.$)");
  EXPECT_TRUE(Matches(g, "ab12."));
  EXPECT_TRUE(Matches(g, "c999yz."));
  EXPECT_FALSE(Matches(g, "ab1."));
  EXPECT_FALSE(Matches(g, "ab1234."));
  EXPECT_FALSE(Matches(g, "d12."));
  EXPECT_TRUE(IsPrefix(g, "ab12y"));
}

TEST(Regex, ClassesAndEscapes) {
  auto g = Compile(R"([\w\-]+@[^\s@]+\t\x41\u00e9[\]a-]\\\/ )");
  EXPECT_TRUE(Matches(g, "a_b-1@x.y\tA\xC3\xA9]\\/ "));
  EXPECT_TRUE(Matches(g, "z@\xF0\x9F\x98\x80\tA\xC3\xA9-\\/ "));
  EXPECT_FALSE(Matches(g, "a@b c\tA\xC3\xA9]\\/ "));
  // \S is Python's; classes negating \d or \w stay within ASCII (inside Python's language).
  auto non_space = Compile(R"(\S[^\s\d])");
  EXPECT_TRUE(Matches(non_space, "a!"));
  EXPECT_TRUE(Matches(non_space,
                      "\xC3\xA9"
                      "a"));
  EXPECT_FALSE(Matches(non_space, "a\xC3\xA9"));
  EXPECT_FALSE(Matches(non_space,
                       "\xC2\xA0"
                       "a"));
  EXPECT_FALSE(Matches(non_space, "a\x1c"));
  EXPECT_FALSE(Matches(non_space,
                       "\x1c"
                       "a"));
  auto dot = Compile("a.c");
  EXPECT_TRUE(Matches(dot,
                      "a\xE2\x82\xAC"
                      "c"));
  EXPECT_FALSE(Matches(dot, "a\nc"));
}

TEST(Regex, LazyQuantifiersNamedGroupsAndLiteralBraces) {
  auto g = Compile(R"((?P<year>\d{4})-(?<m>\d+?)x{,2}y{2,}?\{z})");
  EXPECT_TRUE(Matches(g, "2024-1yy{z}"));
  EXPECT_TRUE(Matches(g, "2024-123xxyyy{z}"));
  EXPECT_FALSE(Matches(g, "2024-1xxxyy{z}"));
}

TEST(Regex, UnsupportedConstructsAreNamed) {
  const std::pair<const char*, const char*> cases[] = {
      {R"((a)\1)", "backreferences"},
      {R"(a(?=b))", "lookahead"},
      {R"((?<=a)b)", "lookbehind"},
      {R"(\bword\b)", "word boundaries"},
      {R"((?i)abc)", "inline flags"},
      {R"(a*+)", "possessive"},
      {R"((?>a))", "atomic"},
      {R"(\p{L})", "\\p{...}"},
      {R"(a^b)", "'^'"},
      {R"(a$b)", "'$'"},
      {R"(a**)", "multiple repeat"},
      {R"(*a)", "nothing to repeat"},
      {R"((ab)", "missing ')'"},
      {R"(ab))", "unbalanced"},
      {R"([b-a])", "bad character range"},
      {R"(a{5,2})", "n < m"},
  };
  for (const auto& [pattern, message] : cases) {
    absl::StatusOr<Expr> e = ParseRegex(pattern);
    ASSERT_FALSE(e.ok()) << pattern;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(e.status().message(), HasSubstr(message)) << pattern;
  }
}

// Backtracking-exponential patterns are linear here; DFA-exponential ones hit the size limit
// quickly instead of hanging.
TEST(Regex, HostilePatternsAreFastOrRefused) {
  const absl::Time start = absl::Now();
  auto nested = Compile("(a+)+b");
  EXPECT_FALSE(Matches(nested, std::string(100000, 'a')));
  EXPECT_TRUE(Matches(nested, std::string(100000, 'a') + "b"));
  auto alt = Compile("(a|a|aa)*c");
  EXPECT_FALSE(Matches(alt, std::string(20000, 'a')));
  CompileLimits limits;
  limits.pda.max_states = 200000;
  auto blowup = CompileRegex("(a|b)*a(a|b){40}", limits);
  ASSERT_FALSE(blowup.ok());
  EXPECT_EQ(blowup.status().code(), absl::StatusCode::kResourceExhausted);
  auto huge = CompileRegex("((a{1000}){1000}){1000}", limits);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

// Random patterns over {a, b, c} agree with std::regex (ECMAScript has the same meaning for the
// constructs generated) on random strings.
std::string RandomRegex(std::mt19937& rng, int depth) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  if (depth <= 0 || pick(3) == 0) {
    static const char* atoms[] = {"a", "b", "c", "[ab]", "[^a]", ".", "(?:ab)", "[a-b]"};
    return atoms[pick(8)];
  }
  switch (pick(4)) {
    case 0: return RandomRegex(rng, depth - 1) + RandomRegex(rng, depth - 1);
    case 1: return "(?:" + RandomRegex(rng, depth - 1) + "|" + RandomRegex(rng, depth - 1) + ")";
    case 2: {
      static const char* ops[] = {"*", "+", "?", "{2}", "{1,3}", "{0,2}", "{2,}"};
      return "(?:" + RandomRegex(rng, depth - 1) + ")" + ops[pick(7)];
    }
    default: return RandomRegex(rng, depth - 1);
  }
}

TEST(Regex, AgreesWithStdRegexOnRandomPatterns) {
  std::mt19937 rng(1234);
  int matched = 0;
  for (int t = 0; t < 300; ++t) {
    const std::string pattern = RandomRegex(rng, 4);
    auto g = Compile(pattern);
    ASSERT_NE(g, nullptr);
    const std::regex re(pattern, std::regex::ECMAScript);
    for (int k = 0; k < 40; ++k) {
      std::string s;
      const int len = static_cast<int>(rng() % 8);
      for (int i = 0; i < len; ++i) s.push_back("abc"[rng() % 3]);
      const bool expected = std::regex_match(s, re);
      matched += expected;
      ASSERT_EQ(Matches(g, s), expected) << "pattern " << pattern << " on \"" << s << "\"";
      if (expected) {
        for (size_t i = 0; i <= s.size(); ++i) ASSERT_TRUE(IsPrefix(g, s.substr(0, i))) << pattern;
      }
    }
  }
  EXPECT_GT(matched, 500);  // the comparison is not vacuous
}

}  // namespace
}  // namespace moeserve::structured

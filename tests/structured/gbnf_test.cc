// GBNF parsing and whole-string matching of the compiled grammars.

#include "server/structured/gbnf_parser.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/structured/structured_test_util.h"

namespace moeserve::structured {
namespace {

using testing::CompileBytes;
using ::testing::HasSubstr;
using testing::IsPrefix;
using testing::Matches;

std::shared_ptr<const CompiledGrammar> Compile(const std::string& text) {
  absl::StatusOr<Grammar> g = ParseGbnf(text);
  EXPECT_TRUE(g.ok()) << g.status();
  if (!g.ok()) return nullptr;
  auto compiled = CompileBytes(*g);
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  return compiled.ok() ? *compiled : nullptr;
}

absl::Status ParseError(const std::string& text) {
  absl::StatusOr<Grammar> g = ParseGbnf(text);
  if (!g.ok()) return g.status();
  return CompileBytes(*g).status();
}

TEST(Gbnf, LiteralsSequencesAndAlternatives) {
  auto g = Compile(R"G(root ::= "ab" ("c" | "de") | "x")G");
  EXPECT_TRUE(Matches(g, "abc"));
  EXPECT_TRUE(Matches(g, "abde"));
  EXPECT_TRUE(Matches(g, "x"));
  EXPECT_FALSE(Matches(g, "ab"));
  EXPECT_FALSE(Matches(g, "abd"));
  EXPECT_TRUE(IsPrefix(g, "abd"));
  EXPECT_FALSE(IsPrefix(g, "abx"));
  EXPECT_FALSE(Matches(g, ""));
}

TEST(Gbnf, RepetitionOperators) {
  auto g = Compile("root ::= \"a\"* \"b\"+ \"c\"? [0-9]{2} [x]{1,3} \"y\"{2,} \"z\"{,1}\n");
  EXPECT_TRUE(Matches(g, "b12xyy"));
  EXPECT_TRUE(Matches(g, "aaabbc12xxxyyyyz"));
  EXPECT_FALSE(Matches(g, "b1xyy"));
  EXPECT_FALSE(Matches(g, "b12xxxxyy"));
  EXPECT_FALSE(Matches(g, "b12xy"));
  EXPECT_FALSE(Matches(g, "b12xyyzz"));
}

TEST(Gbnf, ClassesEscapesAndAnyChar) {
  auto g = Compile(R"G(root ::= [^"\\\x00-\x1F] "\u00e9" [\t\n] "\U0001F600" . [\]\-] )G");
  EXPECT_TRUE(Matches(g, "a\xC3\xA9\t\xF0\x9F\x98\x80\xE4\xB8\x80]"));
  EXPECT_TRUE(Matches(g, "z\xC3\xA9\n\xF0\x9F\x98\x80x-"));
  EXPECT_FALSE(Matches(g, "\"\xC3\xA9\t\xF0\x9F\x98\x80x-"));
  EXPECT_FALSE(Matches(g, "\\\xC3\xA9\t\xF0\x9F\x98\x80x-"));
  // `.` is one code point, never a lone byte of a multi-byte one or invalid UTF-8.
  EXPECT_FALSE(Matches(g, "a\xC3\xA9\t\xF0\x9F\x98\x80\xE4\xB8]"));
  EXPECT_FALSE(Matches(g, "a\xC3\xA9\t\xF0\x9F\x98\x80\xFF]"));
}

TEST(Gbnf, NewlinesEndRulesExceptInsideParenthesesAndAfterBar) {
  auto g = Compile(
      "# a comment\n"
      "root ::= item (\n"
      "   \",\" item  # continued inside parentheses\n"
      " )* |\n"
      "  \"none\"\n"
      "item ::= [a-z]+\n");
  EXPECT_TRUE(Matches(g, "ab,c,d"));
  EXPECT_TRUE(Matches(g, "none"));
  EXPECT_FALSE(Matches(g, "ab,"));
}

TEST(Gbnf, EmptyAlternativeAndRecursion) {
  auto g = Compile(R"G(
root ::= value
value ::= "[" ws (value ("," ws value)*)? "]" | [0-9]+
ws ::= | " "
)G");
  EXPECT_TRUE(Matches(g, "[]"));
  EXPECT_TRUE(Matches(g, "[1,[2, [[]]],3]"));
  EXPECT_TRUE(Matches(g, "[ 1]"));
  EXPECT_FALSE(Matches(g, "[1,]"));
  EXPECT_FALSE(Matches(g, "[[1]"));
  EXPECT_TRUE(IsPrefix(g, "[[[[[[[[[[1"));
}

// Equivalents (written for this test) of the kinds of grammars llama.cpp ships: arithmetic, JSON,
// chess moves, bullet lists, a CJK character grammar and a C-like language.
TEST(Gbnf, GrammarsOfTheKindsLlamaCppShips) {
  auto arithmetic = Compile(R"G(
root ::= (sum "=" sp value "\n")+
sum  ::= value (op value)*
op   ::= [-+*/]
value ::= name | digits | "(" sp sum ")" sp
name ::= [a-z] [a-z0-9_]* sp
digits ::= [0-9]+ sp
sp ::= [ \t\n]*
)G");
  EXPECT_TRUE(Matches(arithmetic, "1+2= 3\n(a*b)/c=x1\n"));
  EXPECT_FALSE(Matches(arithmetic, "1+=2\n"));

  auto json = Compile(R"G(
root   ::= obj
val    ::= obj | arr | str | num | ("true" | "false" | "null") sp
obj    ::= "{" sp ( str ":" sp val ("," sp str ":" sp val)* )? "}" sp
arr    ::= "[" sp ( val ("," sp val)* )? "]" sp
str    ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" sp
num    ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]+)? ([eE] [-+]? [0-9]+)? sp
sp     ::= | " " | "\n" [ \t]{0,20}
)G");
  EXPECT_TRUE(Matches(json, R"G({"a": [1, 2.5e-3, "x\n\u00e9"], "b": {"c": null}, "d": true})G"));
  EXPECT_FALSE(Matches(json, R"G({"a": 01})G"));
  EXPECT_FALSE(Matches(json, R"G({"a" 1})G"));
  EXPECT_FALSE(Matches(json, "[1]"));

  auto chess = Compile(R"G(
root  ::= "1. " mv " " mv "\n" ([1-9] [0-9]? ". " mv " " mv "\n")+
mv    ::= (pawn | piece | castle) [+#]?
piece ::= [NBKQR] [a-h]? [1-8]? "x"? [a-h] [1-8]
pawn  ::= ([a-h] "x")? [a-h] [1-8] ("=" [NBKQR])?
castle ::= "O-O" "-O"?
)G");
  EXPECT_TRUE(Matches(chess, "1. e4 e5\n2. Nf3 Nc6\n3. O-O-O exd8=Q#\n"));
  EXPECT_FALSE(Matches(chess, "1. e4 e5\n"));

  auto list = Compile(R"G(
root ::= entry+
entry ::= "- " [^\r\n\x0b\x0c\x85\u2028\u2029]+ "\n"
)G");
  EXPECT_TRUE(Matches(list, "- milk\n- \xE2\x82\xAC 3\n"));
  EXPECT_FALSE(Matches(list,
                       "- a\xE2\x80\xA8"
                       "b\n"));

  auto cjk = Compile(R"G(
root ::= ch+ ([ \t\n] ch+)*
ch ::= [ぁ-ゟ] | [ァ-ヿ] | [、-〾] | [一-鿿]
)G");
  EXPECT_TRUE(Matches(cjk, "こんにちは 世界"));
  EXPECT_FALSE(Matches(cjk, "hello"));

  auto clike = Compile(R"G(
root ::= (decl)*
decl ::= type ident "(" param? ")" "{" stmt* "}"
type ::= "int" sp | "char" sp
ident ::= [a-zA-Z_] [a-zA-Z_0-9]*
param ::= type ident
stmt ::= ( type ident sp "=" sp expr ";" ) | ( "return" sp expr ";" ) | ( "while" "(" expr ")" "{" stmt* "}" ) | cmt
expr ::= term (("+" | "-") term)*
term ::= ident | [0-9]+ | "(" sp expr sp ")"
cmt ::= "/*" ( [^*] | ("*" [^/]) )* "*/"
sp ::= ([ \t\n]+)
)G");
  EXPECT_TRUE(Matches(clike, "int main(){int x = 1+( y );/* c */while(x){return x;}}"));
  EXPECT_FALSE(Matches(clike, "int main(){return;}"));
}

TEST(Gbnf, Errors) {
  EXPECT_THAT(ParseError("root ::= \"a\" undefined\n").message(), HasSubstr("undefined rule 'undefined'"));
  EXPECT_THAT(ParseError("item ::= \"a\"\n").message(), HasSubstr("no 'root' rule"));
  EXPECT_THAT(ParseError("root ::= \"a\"\nroot ::= \"b\"\n").message(), HasSubstr("defined twice"));
  EXPECT_THAT(ParseError("root ::= \"abc\n").message(), HasSubstr("line 1"));
  EXPECT_THAT(ParseError("root ::= (\"a\"\n").message(), HasSubstr("expected ')'"));
  EXPECT_THAT(ParseError("root ::= [b-a]\n").message(), HasSubstr("out of order"));
  EXPECT_THAT(ParseError("root ::= \"\\q\"\n").message(), HasSubstr("unknown escape"));
  EXPECT_THAT(ParseError("root ::= <think> \"a\"\n").message(), HasSubstr("token references"));
  EXPECT_THAT(ParseError("root ::= \"a\"{3,2}\n").message(), HasSubstr("n < m"));
  EXPECT_THAT(ParseError("root ::= \"a\" \xFF\n").message(), HasSubstr("expected the end of the rule"));
  EXPECT_THAT(ParseError("root ::= " + std::string(300, '(') + "\"a\"" + std::string(300, ')')).message(),
              HasSubstr("deeper than 256"));
  // Grammars that parse but cannot be matched.
  EXPECT_THAT(ParseError("root ::= root \"a\" | \"b\"\n").message(), HasSubstr("left recursion"));
  EXPECT_THAT(ParseError("root ::= x\nx ::= y? x \"a\" | \"b\"\ny ::= \"c\"?\n").message(),
              HasSubstr("left recursion"));
  EXPECT_THAT(ParseError("root ::= \"(\" root \")\"\n").message(), HasSubstr("no finite derivation"));
  EXPECT_EQ(ParseError("root ::= \"(\" root \")\" | \"x\"\n").code(), absl::StatusCode::kOk);
}

TEST(Gbnf, ToGbnfRoundTrips) {
  const std::string text =
      "root ::= \"a\\\"b\\\\\" [^\\]x-z\\n] ( item | \"\" )* item{2,5}\n"
      "item ::= [\\u00e9-\\U0001F600] | \".\" .\n";
  absl::StatusOr<Grammar> g = ParseGbnf(text);
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string printed = ToGbnf(*g);
  absl::StatusOr<Grammar> again = ParseGbnf(printed);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << printed;
  EXPECT_EQ(ToGbnf(*again), printed);
}

TEST(Gbnf, UnreachableNonProductiveRulesAreIgnored) {
  auto g = Compile("root ::= \"a\" | loop\nloop ::= \"(\" loop \")\"\nunused ::= unused \"x\"\n");
  EXPECT_TRUE(Matches(g, "a"));
  EXPECT_FALSE(IsPrefix(g, "("));
}

}  // namespace
}  // namespace moeserve::structured

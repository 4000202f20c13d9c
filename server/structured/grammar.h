#ifndef MOESERVE_SERVER_STRUCTURED_GRAMMAR_H_
#define MOESERVE_SERVER_STRUCTURED_GRAMMAR_H_

// The grammar IR every constraint is lowered to before compilation: a context-free grammar over
// Unicode code points (literals are UTF-8 byte strings, classes are code point ranges), with
// regex-style repetition. The GBNF parser, the regex parser and the JSON Schema converter all emit
// it; the compiler (compiled_grammar.h) turns it into a byte-level pushdown automaton.
//
// A Grammar is a plain value: rules are numbered, rule 0 need not be the root (see `root`).
// Expressions are trees owned by value; builders below keep construction short.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moeserve::structured {

inline constexpr uint32_t kMaxCodepoint = 0x10FFFF;

// Inclusive code point range.
struct CodepointRange {
  uint32_t lo = 0;
  uint32_t hi = 0;
  friend bool operator==(const CodepointRange&, const CodepointRange&) = default;
};

// Sorted, disjoint, non-adjacent ranges; surrogates (U+D800..U+DFFF) never included.
using CodepointSet = std::vector<CodepointRange>;

// Normalizes `ranges` (any order, overlaps allowed) into a CodepointSet.
CodepointSet Canonicalize(std::vector<CodepointRange> ranges);
// Every code point (minus surrogates) not in `set`.
CodepointSet Complement(const CodepointSet& set);
CodepointSet Union(const CodepointSet& a, const CodepointSet& b);
CodepointSet Intersect(const CodepointSet& a, const CodepointSet& b);

struct Expr {
  enum class Kind {
    kEmpty,      // matches ""
    kLiteral,    // `text`, bytes matched exactly (UTF-8 when it came from text)
    kClass,      // one code point in `set` (an empty set matches nothing)
    kSequence,   // children in order
    kChoice,     // one of children (no children: matches nothing)
    kRepeat,     // children[0] between min and max times (max < 0: unbounded)
    kRuleRef,    // rule `rule`
    kIntersect,  // strings every child matches; children must be regular (no kRuleRef inside)
    kFreeText,   // any bytes in which no child (each a non-empty kLiteral) occurs; when `text` is not
                 // empty, the bytes up to and including the first occurrence of `text`, which must
                 // come before any child (free text up to a trigger; see FreeText below)
  };
  Kind kind = Kind::kEmpty;
  std::string text;
  CodepointSet set;
  std::vector<Expr> children;
  int32_t min = 0;
  int32_t max = -1;
  int32_t rule = -1;
};

// Builders.
Expr Empty();
Expr Literal(std::string_view bytes);
Expr Class(CodepointSet set);
Expr Char(uint32_t codepoint);
Expr Range(uint32_t lo, uint32_t hi);
Expr Seq(std::vector<Expr> items);
Expr Choice(std::vector<Expr> items);
Expr Repeat(Expr item, int32_t min, int32_t max);
Expr Star(Expr item);
Expr Plus(Expr item);
Expr Optional(Expr item);
Expr Ref(int32_t rule);
Expr Intersect(std::vector<Expr> items);
// Never matches (an empty choice).
Expr Nothing();
// Free text (kFreeText): any bytes, not necessarily UTF-8, in which no word of `avoid` occurs;
// with `until` not empty, the text ends with the first occurrence of `until` (free text before a
// trigger). Lowered to an Aho-Corasick automaton over the words, so a grammar around it stays a
// byte-level DFA whose free-text states decide every token without the stack.
Expr FreeText(const std::vector<std::string>& avoid, std::string_view until = "");

struct Rule {
  std::string name;
  Expr body;
};

struct Grammar {
  std::vector<Rule> rules;
  int32_t root = 0;

  // Appends a rule with an empty body; returns its index.
  int32_t AddRule(std::string name);
  // The index of the rule named `name`, -1 when absent (linear: for parsers and tests).
  int32_t Find(std::string_view name) const;
};

// Renders the grammar in GBNF (rule names as given; the root rule first, named as it is).
// Literals and classes are escaped so that ParseGbnf reads the same language back.
std::string ToGbnf(const Grammar& grammar);

// Appends the UTF-8 encoding of `codepoint` (REQUIRES: <= kMaxCodepoint, not a surrogate).
void AppendUtf8(uint32_t codepoint, std::string* out);

// Decodes one UTF-8 code point at text[*pos], advancing *pos; false on invalid or truncated input.
bool DecodeUtf8(std::string_view text, size_t* pos, uint32_t* codepoint);

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_GRAMMAR_H_

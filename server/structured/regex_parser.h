#ifndef MOESERVE_SERVER_STRUCTURED_REGEX_PARSER_H_
#define MOESERVE_SERVER_STRUCTURED_REGEX_PARSER_H_

// Regular expressions (the Python `re` / ECMAScript subset that users and JSON Schema `pattern`s
// write) parsed into the grammar IR, as a whole-string match: the constrained output must match
// the entire pattern, as Python's re.fullmatch does.
//
// Supported: literals; `.` (any code point but \n); classes [...] [^...] with ranges and escapes;
// \s and \S as Python defines them on str; \d and \w as ASCII ([0-9], [A-Za-z0-9_]), and \D, \W
// and negated classes holding \d \w \D \W restricted to ASCII, so that every output also matches
// Python's Unicode-aware classes; \t \n \r \f \v \a \0 \xHH
// \uHHHH \UHHHHHHHH and escaped punctuation; groups ( ), (?: ), (?P<name> ), (?<name> );
// alternation; quantifiers * + ? {m} {m,} {m,n} {,n}, each optionally lazy (same language); `^` /
// \A at the start and `$` / \Z at the end of a top-level alternative (no-ops under whole-string
// matching). A `{` that does not start a quantifier is a literal, as in Python.
// Unsupported, each an InvalidArgument naming it: backreferences, lookaround, word boundaries,
// anchors elsewhere, inline flags, atomic groups and possessive quantifiers, conditionals, \p{..}.
//
// The automaton built from the result is a DFA, so constructs that make backtracking engines
// exponential ((a+)+b, (a|a)*c) are matched in linear time; patterns whose DFA would be too large
// (e.g. (a|b)*a(a|b){30}) are refused by the compiler's size limit.

#include <string_view>

#include "absl/status/statusor.h"
#include "server/structured/grammar.h"

namespace moeserve::structured {

// The language of `pattern` (code points). Errors are InvalidArgument "regex: ..." with the offset.
absl::StatusOr<Expr> ParseRegex(std::string_view pattern);

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_REGEX_PARSER_H_

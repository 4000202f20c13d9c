#ifndef MOESERVE_SERVER_STRUCTURED_GBNF_PARSER_H_
#define MOESERVE_SERVER_STRUCTURED_GBNF_PARSER_H_

// GBNF, the grammar format of llama.cpp (grammars/README.md there), parsed into the grammar IR.
//
//   root  ::= "1. " move (" " move)*        # comments run to the end of the line
//   move  ::= [a-h] [1-8] | "O-O" "-O"?
//
// Supported: rules `name ::= alternatives` (names of [a-zA-Z0-9_-]); literals "..." and classes
// [...] / [^...] with the escapes \xHH \uHHHH \UHHHHHHHH \t \n \r and a backslash before any ASCII
// punctuation; `.` (any code point); grouping; `|`; postfix * + ? {m} {m,} {m,n} {,n}. A rule ends
// at a newline unless inside parentheses or right after `|`. The root rule is `root`.
// Errors (InvalidArgument, with line:column): syntax errors, an undefined or twice-defined rule, no
// root, invalid UTF-8, nesting deeper than 256, and llama.cpp's token references (<...>, <[id]>,
// !<...>), which this server does not support.

#include <string_view>

#include "absl/status/statusor.h"
#include "server/structured/grammar.h"

namespace moeserve::structured {

absl::StatusOr<Grammar> ParseGbnf(std::string_view text);

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_GBNF_PARSER_H_

#ifndef MOESERVE_SERVER_STRUCTURED_CHAR_CLASS_H_
#define MOESERVE_SERVER_STRUCTURED_CHAR_CLASS_H_

// The bracket character class shared by the GBNF and regex front ends: `[`, an optional `^`, items
// up to `]`, where an item is a code point, a range `lo-hi` of two code points (a `-` before `]`
// is a literal), or a shorthand class (regex: \d \w \s ...). The result is canonicalized and, with
// `^`, complemented. What differs between the front ends is passed in: how one item is read (their
// escapes), whether a `]` first in the class is a literal (regex), and whether an item's negation
// stays within ASCII (regex: a class holding \d \w \D or \W). Pure functions.

#include <cstddef>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "server/structured/grammar.h"

namespace moeserve::structured {

struct ClassItem {
  CodepointSet set;
  bool shorthand = false;       // a class (\d, \s, ...): cannot bound a range
  bool ascii_negation = false;  // `[^...]` holding it complements within ASCII only
};

// Scans the class at text[*pos] == '[', leaving *pos after its `]`; `pos` is the front end's own
// cursor. `leading_bracket_is_literal`: a `]` first in the class is a literal (regex: `[]a]`,
// `[^]a]`). `read_item` reads one item at text[*pos] (never the closing `]`), advancing *pos, and
// returns false after reporting its own error; `fail` reports the scanner's errors ("unterminated
// character class", "bad character range", "... (out of order)") and returns false. False after an error.
bool ScanCharClass(std::string_view text, size_t* pos, bool leading_bracket_is_literal,
                   absl::FunctionRef<bool(ClassItem* item)> read_item,
                   absl::FunctionRef<bool(std::string_view message)> fail, CodepointSet* out);

// ASCII minus `set` (regex \D, \W and classes negated within ASCII).
CodepointSet AsciiComplement(const CodepointSet& set);

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_CHAR_CLASS_H_

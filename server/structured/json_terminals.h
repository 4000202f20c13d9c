#ifndef MOESERVE_SERVER_STRUCTURED_JSON_TERMINALS_H_
#define MOESERVE_SERVER_STRUCTURED_JSON_TERMINALS_H_

// The leaves of JSON grammars as grammar IR: strings (and the JSON-escaped form of any code point
// language, for `pattern` and `format`), integers and numbers with exact bounds, and the string
// formats. Used by the JSON Schema converter.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/structured/grammar.h"

namespace moeserve::structured {

inline constexpr int32_t kMaxIntegerDigits = 19;
inline constexpr int32_t kMaxFractionDigits = 16;
inline constexpr int32_t kMaxExponentDigits = 2;

// One character of a JSON string's content: unescaped (not ", \ or a control character) or an
// escape (\" \\ \/ \b \f \n \r \t \uXXXX without lone surrogates).
Expr JsonStringChar();

// The JSON string-content encoding of the code point language `e`: ", \ and control characters
// become escapes. REQUIRES: `e` holds no rule references.
Expr JsonEscape(const Expr& e);

// "..." exactly encoding `value` (UTF-8).
Expr JsonStringLiteral(std::string_view value);
std::string JsonQuote(std::string_view value);

// -?(0|[1-9][0-9]*) with at most kMaxIntegerDigits digits.
Expr JsonInteger();
// JSON number syntax with the digit limits above.
Expr JsonNumber();

// Integers in [lo, hi] (nullopt: unbounded on that side, within kMaxIntegerDigits digits); the
// empty choice when the range is empty.
Expr IntegerRange(std::optional<int64_t> lo, std::optional<int64_t> hi);

// Numbers v with lo <(=) v <(=) hi for integer bounds, without exponent; the empty choice when
// the interval is empty.
struct NumberBound {
  int64_t value = 0;
  bool exclusive = false;
};
Expr NumberRange(std::optional<NumberBound> lo, std::optional<NumberBound> hi);

// The code point language of a string `format` (date, time, date-time, uuid, email, ipv4);
// InvalidArgument naming any other.
absl::StatusOr<Expr> FormatLanguage(std::string_view format);

// JSON string content (unescaped characters only) that differs from every string of `excluded`.
Expr ContentExcluding(const std::vector<std::string>& excluded);

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_JSON_TERMINALS_H_

#ifndef MOESERVE_SERVER_TOKENIZER_TEMPLATE_LEXER_H_
#define MOESERVE_SERVER_TOKENIZER_TEMPLATE_LEXER_H_

// Splits a Jinja2 template into tokens the way transformers' environment does
// (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False): text between tags has the
// whitespace control of `{%- -%} {{- -}} {#- -#}` and `+` already applied, comments are dropped
// and `{% raw %}` bodies become text. Newlines (\r\n, \r) are normalized to \n first.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moeserve::jinja {

struct Token {
  enum class Type {
    kText,        // literal template text
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,  // text holds the unescaped value
    kInt,
    kFloat,
    kOp,  // text holds the operator: + - * / // % ** ~ ( ) [ ] { } , . : | = == != < > <= >=
    kEof,
  };
  Type type;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;    // 1-based
  int column = 1;  // 1-based, in code points
};

// Errors are InvalidArgument("line L, column C: ...").
absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source);

// Python str.isspace() for one code point.
bool IsPyWhitespace(uint32_t cp);

}  // namespace moeserve::jinja

#endif  // MOESERVE_SERVER_TOKENIZER_TEMPLATE_LEXER_H_

#include "server/tokenizer/template/lexer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/tokenizer/unicode.h"

namespace moeserve::jinja {

bool IsPyWhitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

namespace {

// Byte offset just past the last non-whitespace character of `s`.
size_t RStripEnd(std::string_view s) {
  size_t end = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    const uint32_t cp = DecodeUtf8Char(s, &pos);
    if (!IsPyWhitespace(cp)) end = pos;
  }
  return end;
}

// Offset of the first non-whitespace character at or after `pos`.
size_t SkipWhitespace(std::string_view s, size_t pos) {
  while (pos < s.size()) {
    size_t next = pos;
    if (!IsPyWhitespace(DecodeUtf8Char(s, &next))) break;
    pos = next;
  }
  return pos;
}

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Normalize newlines and drop one trailing newline, as Jinja2's lexer does.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_.push_back('\n');
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_.push_back(source[i]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  absl::StatusOr<std::vector<Token>> Run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      const size_t tag = FindTagStart(pos);
      if (tag == std::string::npos) {
        EmitText(pos, src_.substr(pos));
        break;
      }
      const char kind = src_[tag + 1];
      const char mod = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      std::string text = src_.substr(pos, tag - pos);
      if (mod == '-') {
        text.resize(RStripEnd(text));
      } else if (mod != '+' && kind != '{') {
        // lstrip_blocks: drop blanks between the line start and a block or comment tag.
        const size_t line_pos = text.rfind('\n') + 1;  // npos + 1 == 0
        const bool line_starting = pos == 0 || src_[pos - 1] == '\n';
        if ((line_pos > 0 || line_starting) && line_pos < text.size() &&
            SkipWhitespace(text, line_pos) == text.size()) {
          text.resize(line_pos);
        }
      }
      EmitText(pos, std::move(text));
      size_t p = tag + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      absl::Status status;
      if (kind == '#') {
        status = LexComment(tag, p, &pos);
      } else if (kind == '%' && IsKeywordTag(p, "raw")) {
        status = LexRaw(tag, p, &pos);
      } else {
        status = LexTag(kind, tag, p, &pos);
      }
      if (!status.ok()) return status;
    }
    Token eof{Token::Type::kEof};
    SetPosition(src_.size(), &eof);
    tokens_.push_back(std::move(eof));
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t pos) const {
    while (true) {
      pos = src_.find('{', pos);
      if (pos == std::string::npos || pos + 1 >= src_.size()) return std::string::npos;
      const char c = src_[pos + 1];
      if (c == '{' || c == '%' || c == '#') return pos;
      ++pos;
    }
  }

  // Tokens come in source order, so the column is counted on from the previous token's (a
  // count from the line start for every token was quadratic in the length of a line).
  void SetPosition(size_t offset, Token* token) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - 1;
    token->line = static_cast<int>(it - line_starts_.begin()) + 1;
    if (column_offset_ < *it || column_offset_ > offset) {
      column_offset_ = *it;
      column_ = 1;
    }
    while (column_offset_ < offset && column_offset_ < src_.size()) {
      column_offset_ += Utf8CharLength(src_[column_offset_]);
      ++column_;
    }
    token->column = column_;
  }

  absl::Status ErrorAt(size_t offset, std::string_view message) const {
    Token t;
    SetPosition(offset, &t);
    return absl::InvalidArgumentError(
        absl::StrFormat("chat template line %d, column %d: %s", t.line, t.column, message));
  }

  void EmitText(size_t offset, std::string text) {
    if (text.empty()) return;
    Token t{Token::Type::kText, std::move(text)};
    SetPosition(offset, &t);
    tokens_.push_back(std::move(t));
  }

  void Emit(Token::Type type, size_t offset, std::string text = "") {
    Token t{type, std::move(text)};
    SetPosition(offset, &t);
    tokens_.push_back(std::move(t));
  }

  // After a tag end: `-` strips all following whitespace, a plain block end eats one newline.
  size_t AfterTagEnd(size_t end, char strip, bool trim_newline) const {
    if (strip == '-') return SkipWhitespace(src_, end);
    if (strip != '+' && trim_newline && end < src_.size() && src_[end] == '\n') return end + 1;
    return end;
  }

  // True when the tag body starting at `p` is exactly `keyword` (e.g. "{% raw %}").
  bool IsKeywordTag(size_t p, std::string_view keyword) const {
    p = SkipWhitespace(src_, p);
    if (src_.compare(p, keyword.size(), keyword) != 0) return false;
    p = SkipWhitespace(src_, p + keyword.size());
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    return src_.compare(p, 2, "%}") == 0;
  }

  absl::Status LexComment(size_t tag, size_t p, size_t* pos) {
    const size_t end = src_.find("#}", p);
    if (end == std::string::npos) return ErrorAt(tag, "unterminated comment");
    const char strip = end > p ? src_[end - 1] : '\0';
    *pos = AfterTagEnd(end + 2, strip, /*trim_newline=*/true);
    return absl::OkStatus();
  }

  absl::Status LexRaw(size_t tag, size_t p, size_t* pos) {
    size_t close = src_.find("%}", p);
    const char begin_strip = src_[close - 1];
    size_t body = AfterTagEnd(close + 2, begin_strip, /*trim_newline=*/true);
    size_t search = body;
    while (true) {
      const size_t end_tag = src_.find("{%", search);
      if (end_tag == std::string::npos) return ErrorAt(tag, "unterminated {% raw %} block");
      size_t q = end_tag + 2;
      const char end_mod = q < src_.size() ? src_[q] : '\0';
      if (end_mod == '-' || end_mod == '+') ++q;
      if (!IsKeywordTag(q, "endraw")) {
        search = end_tag + 2;
        continue;
      }
      std::string text = src_.substr(body, end_tag - body);
      if (end_mod == '-') text.resize(RStripEnd(text));
      EmitText(body, std::move(text));
      close = src_.find("%}", q);
      *pos = AfterTagEnd(close + 2, src_[close - 1], /*trim_newline=*/true);
      return absl::OkStatus();
    }
  }

  absl::Status LexTag(char kind, size_t tag, size_t p, size_t* pos) {
    const bool is_var = kind == '{';
    Emit(is_var ? Token::Type::kVarBegin : Token::Type::kBlockBegin, tag);
    std::vector<char> brackets;
    while (true) {
      p = SkipWhitespace(src_, p);
      if (p >= src_.size()) {
        return ErrorAt(tag, is_var ? "unterminated '{{' (missing '}}')" : "unterminated '{%' (missing '%}')");
      }
      if (brackets.empty()) {
        const char* end = is_var ? "}}" : "%}";
        const char c = src_[p];
        const bool modded = (c == '-' || (!is_var && c == '+')) && src_.compare(p + 1, 2, end) == 0;
        if (modded || src_.compare(p, 2, end) == 0) {
          Emit(is_var ? Token::Type::kVarEnd : Token::Type::kBlockEnd, p);
          const size_t after = p + (modded ? 3 : 2);
          *pos = AfterTagEnd(after, modded ? c : '\0', /*trim_newline=*/!is_var);
          return absl::OkStatus();
        }
      }
      absl::Status status = LexExpressionToken(&p, &brackets);
      if (!status.ok()) return status;
    }
  }

  absl::Status LexExpressionToken(size_t* pp, std::vector<char>* brackets) {
    size_t p = *pp;
    const char c = src_[p];
    if (IsNameStart(c)) {
      size_t e = p + 1;
      while (e < src_.size() && (IsNameStart(src_[e]) || IsDigit(src_[e]))) ++e;
      Emit(Token::Type::kName, p, src_.substr(p, e - p));
      *pp = e;
      return absl::OkStatus();
    }
    if (IsDigit(c)) return LexNumber(pp);
    if (c == '\'' || c == '"') return LexString(pp);
    static constexpr std::string_view kTwoCharOps[] = {"//", "**", "==", "!=", "<=", ">="};
    for (std::string_view op : kTwoCharOps) {
      if (src_.compare(p, 2, op) == 0) {
        Emit(Token::Type::kOp, p, std::string(op));
        *pp = p + 2;
        return absl::OkStatus();
      }
    }
    static constexpr std::string_view kOneCharOps = "+-*/%~()[]{},.:|=<>";
    if (kOneCharOps.find(c) == std::string_view::npos) {
      size_t next = p;
      std::string ch;
      AppendUtf8(DecodeUtf8Char(src_, &next), &ch);
      return ErrorAt(p, absl::StrCat("unexpected character '", ch, "'"));
    }
    if (c == '(' || c == '[' || c == '{') {
      brackets->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets->empty() || brackets->back() != c) {
        return ErrorAt(p, absl::StrCat("unexpected '", std::string(1, c), "'"));
      }
      brackets->pop_back();
    }
    Emit(Token::Type::kOp, p, std::string(1, c));
    *pp = p + 1;
    return absl::OkStatus();
  }

  absl::Status LexNumber(size_t* pp) {
    const size_t start = *pp;
    size_t p = start;
    auto digits = [&] {
      while (p < src_.size() && (IsDigit(src_[p]) || (src_[p] == '_' && p + 1 < src_.size() && IsDigit(src_[p + 1])))) {
        ++p;
      }
    };
    digits();
    bool is_float = false;
    if (p + 1 < src_.size() && src_[p] == '.' && IsDigit(src_[p + 1])) {
      is_float = true;
      ++p;
      digits();
    }
    if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && IsDigit(src_[q])) {
        is_float = true;
        p = q;
        digits();
      }
    }
    std::string text;
    for (size_t i = start; i < p; ++i) {
      if (src_[i] != '_') text.push_back(src_[i]);
    }
    Token t{is_float ? Token::Type::kFloat : Token::Type::kInt, text};
    SetPosition(start, &t);
    if (is_float) {
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      errno = 0;
      const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
      if (errno != 0 || v > static_cast<unsigned long long>(INT64_MAX)) {
        return ErrorAt(start, "integer literal out of range");
      }
      t.int_value = static_cast<int64_t>(v);
    }
    tokens_.push_back(std::move(t));
    *pp = p;
    return absl::OkStatus();
  }

  // Python string literal escapes (Jinja2 decodes literals with 'unicode-escape').
  absl::Status LexString(size_t* pp) {
    const size_t start = *pp;
    const char quote = src_[start];
    std::string value;
    size_t p = start + 1;
    while (true) {
      if (p >= src_.size()) return ErrorAt(start, "unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        value.push_back(c);
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) return ErrorAt(start, "unterminated string literal");
      const char e = src_[p + 1];
      p += 2;
      auto hex = [&](int n) -> absl::StatusOr<uint32_t> {
        uint32_t v = 0;
        for (int i = 0; i < n; ++i, ++p) {
          if (p >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[p]))) {
            return ErrorAt(p, "truncated \\x, \\u or \\U escape in string literal");
          }
          const char h = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[p])));
          v = v * 16 + static_cast<uint32_t>(h <= '9' ? h - '0' : h - 'a' + 10);
        }
        return v;
      };
      uint32_t cp = 0;
      switch (e) {
        case '\n': continue;  // line continuation
        case '\\': value.push_back('\\'); continue;
        case '\'': value.push_back('\''); continue;
        case '"': value.push_back('"'); continue;
        case 'a': value.push_back('\a'); continue;
        case 'b': value.push_back('\b'); continue;
        case 'f': value.push_back('\f'); continue;
        case 'n': value.push_back('\n'); continue;
        case 'r': value.push_back('\r'); continue;
        case 't': value.push_back('\t'); continue;
        case 'v': value.push_back('\v'); continue;
        case 'x':
        case 'u':
        case 'U': {
          auto v = hex(e == 'x' ? 2 : e == 'u' ? 4 : 8);
          if (!v.ok()) return v.status();
          cp = *v;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            cp = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i, ++p) {
              cp = cp * 8 + static_cast<uint32_t>(src_[p] - '0');
            }
            break;
          }
          value.push_back('\\');  // unknown escapes are kept verbatim, as in Python
          p -= 1;
          continue;
      }
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return ErrorAt(start, "string literal escape is not a valid Unicode scalar value");
      }
      AppendUtf8(cp, &value);
    }
    Token t{Token::Type::kString, std::move(value)};
    SetPosition(start, &t);
    tokens_.push_back(std::move(t));
    *pp = p + 1;
    return absl::OkStatus();
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  // Where the last column was counted: src_ offset and its column on its line.
  mutable size_t column_offset_ = 0;
  mutable int column_ = 1;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source) { return Lexer(source).Run(); }

}  // namespace moeserve::jinja

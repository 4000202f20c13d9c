#include "server/structured/gbnf_parser.h"

#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/structured/char_class.h"
#include "server/structured/text_util.h"

namespace moeserve::structured {
namespace {

constexpr int kMaxNesting = 256;
constexpr int64_t kMaxRepeatCount = 1 << 20;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view text) : s_(text) {}

  absl::StatusOr<Grammar> Parse() {
    SkipSpace(true);
    while (pos_ < s_.size()) {
      const size_t name_pos = pos_;
      std::string name = ParseName();
      if (name.empty()) return Error("expected a rule name");
      SkipSpace(false);
      if (s_.substr(pos_, 3) != "::=") return Error(absl::StrCat("expected ::= after rule name '", name, "'"));
      pos_ += 3;
      SkipSpace(true);
      const int32_t id = RuleId(name);
      if (defined_[id]) return ErrorAt(name_pos, absl::StrCat("rule '", name, "' is defined twice"));
      defined_[id] = true;
      Expr body;
      if (!ParseAlternatives(0, &body)) return status_;
      grammar_.rules[id].body = std::move(body);
      const size_t end = pos_;
      SkipSpace(false);
      if (pos_ < s_.size() && s_[pos_] != '\n' && s_[pos_] != '\r') {
        if (pos_ == end) return Error("expected the end of the rule");
        return Error(absl::StrCat("unexpected '", std::string(1, s_[pos_]), "'"));
      }
      SkipSpace(true);
    }
    for (size_t i = 0; i < grammar_.rules.size(); ++i) {
      if (!defined_[i]) {
        return ErrorAt(first_use_[i], absl::StrCat("undefined rule '", grammar_.rules[i].name, "'"));
      }
    }
    const auto root = ids_.find("root");
    if (root == ids_.end()) return absl::InvalidArgumentError("grammar: no 'root' rule");
    grammar_.root = root->second;
    return std::move(grammar_);
  }

 private:
  absl::Status ErrorAt(size_t at, const std::string& message) {
    int line = 1, col = 1;
    for (size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat("grammar: line ", line, ", column ", col, ": ", message));
  }
  absl::Status Error(const std::string& message) { return ErrorAt(pos_, message); }
  bool Fail(absl::Status s) {
    status_ = std::move(s);
    return false;
  }

  // Spaces, tabs and comments; newlines too when `newlines`.
  void SkipSpace(bool newlines) {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == ' ' || c == '\t' || ((c == '\n' || c == '\r') && newlines)) {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n' && s_[pos_] != '\r') ++pos_;
      } else {
        break;
      }
    }
  }

  std::string ParseName() {
    const size_t start = pos_;
    while (pos_ < s_.size() && IsNameChar(s_[pos_])) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  int32_t RuleId(const std::string& name) {
    auto [it, inserted] = ids_.try_emplace(name, static_cast<int32_t>(grammar_.rules.size()));
    if (inserted) {
      grammar_.AddRule(name);
      defined_.push_back(false);
      first_use_.push_back(pos_);
    }
    return it->second;
  }

  bool ParseAlternatives(int depth, Expr* out) {
    if (depth > kMaxNesting) return Fail(Error("grammar nesting is deeper than 256"));
    std::vector<Expr> alts;
    while (true) {
      Expr seq;
      if (!ParseSequence(depth, &seq)) return false;
      alts.push_back(std::move(seq));
      if (pos_ < s_.size() && s_[pos_] == '|') {
        ++pos_;
        SkipSpace(true);
        continue;
      }
      break;
    }
    *out = Choice(std::move(alts));
    return true;
  }

  bool ParseSequence(int depth, Expr* out) {
    const bool nested = depth > 0;
    std::vector<Expr> items;
    while (true) {
      SkipSpace(nested);
      if (pos_ >= s_.size()) break;
      const char c = s_[pos_];
      Expr item;
      if (c == '"') {
        if (!ParseLiteral(&item)) return false;
      } else if (c == '[') {
        if (!ParseClass(&item)) return false;
      } else if (c == '.') {
        ++pos_;
        item = Range(0, kMaxCodepoint);
      } else if (c == '(') {
        ++pos_;
        SkipSpace(true);
        if (!ParseAlternatives(depth + 1, &item)) return false;
        SkipSpace(true);
        if (pos_ >= s_.size() || s_[pos_] != ')') return Fail(Error("expected ')'"));
        ++pos_;
      } else if (c == '<' || (c == '!' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '<')) {
        return Fail(Error("token references (<...>) are not supported; write the token's text as a literal"));
      } else if (IsNameChar(c)) {
        const size_t name_pos = pos_;
        const std::string name = ParseName();
        // A name followed by ::= starts the next rule (only reachable inside parentheses).
        size_t look = pos_;
        while (look < s_.size() && (s_[look] == ' ' || s_[look] == '\t')) ++look;
        if (s_.substr(look, 3) == "::=") {
          pos_ = name_pos;
          return Fail(Error("expected ')' before the next rule"));
        }
        pos_ = name_pos;
        const int32_t id = RuleId(name);
        pos_ = name_pos + name.size();
        item = Ref(id);
      } else {
        break;  // '|', ')', a newline outside parentheses, or an error the caller reports
      }
      if (!ParsePostfix(&item)) return false;
      items.push_back(std::move(item));
    }
    *out = Seq(std::move(items));
    return true;
  }

  bool ParsePostfix(Expr* item) {
    while (true) {
      const size_t save = pos_;
      SkipSpace(false);
      if (pos_ >= s_.size()) {
        pos_ = save;
        return true;
      }
      const char c = s_[pos_];
      if (c == '*') {
        ++pos_;
        *item = Star(std::move(*item));
      } else if (c == '+') {
        ++pos_;
        *item = Plus(std::move(*item));
      } else if (c == '?') {
        ++pos_;
        *item = Optional(std::move(*item));
      } else if (c == '{') {
        ++pos_;
        int64_t min = 0, max = -1;
        SkipSpace(false);
        const bool has_min = ParseInt(&min);
        SkipSpace(false);
        if (pos_ < s_.size() && s_[pos_] == '}') {
          if (!has_min) return Fail(Error("expected a count in {}"));
          max = min;
        } else if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          SkipSpace(false);
          if (!ParseInt(&max)) max = -1;
          SkipSpace(false);
          if (!has_min) min = 0;
        } else {
          return Fail(Error("expected '}' or ',' in a repetition"));
        }
        if (pos_ >= s_.size() || s_[pos_] != '}') return Fail(Error("expected '}'"));
        ++pos_;
        if (min > kMaxRepeatCount || max > kMaxRepeatCount) {
          return Fail(Error(absl::StrCat("repetition count above ", kMaxRepeatCount)));
        }
        if (max >= 0 && max < min) return Fail(Error("repetition {m,n} with n < m"));
        *item = Repeat(std::move(*item), static_cast<int32_t>(min), static_cast<int32_t>(max));
      } else {
        pos_ = save;
        return true;
      }
    }
  }

  bool ParseInt(int64_t* value) { return ParseCount(s_, &pos_, kMaxRepeatCount, value); }

  // One (possibly escaped) code point at pos_.
  bool ParseChar(uint32_t* c) {
    if (pos_ >= s_.size()) return Fail(Error("unexpected end of grammar"));
    if (s_[pos_] != '\\') {
      if (!DecodeUtf8(s_, &pos_, c)) return Fail(Error("invalid UTF-8"));
      return true;
    }
    if (pos_ + 1 >= s_.size()) return Fail(Error("unexpected end after '\\'"));
    const char e = s_[pos_ + 1];
    int digits = 0;
    switch (e) {
      case 'x': digits = 2; break;
      case 'u': digits = 4; break;
      case 'U': digits = 8; break;
      case 't':
        *c = '\t';
        pos_ += 2;
        return true;
      case 'n':
        *c = '\n';
        pos_ += 2;
        return true;
      case 'r':
        *c = '\r';
        pos_ += 2;
        return true;
      default:
        if (e > 0x20 && e < 0x7F && !std::isalnum(static_cast<unsigned char>(e))) {
          *c = static_cast<uint8_t>(e);
          pos_ += 2;
          return true;
        }
        return Fail(Error(absl::StrCat("unknown escape '\\", std::string(1, e), "'")));
    }
    pos_ += 2;
    uint32_t v = 0;
    if (!ParseHexDigits(s_, &pos_, digits, &v)) {
      return Fail(Error(absl::StrCat("expected ", digits, " hex digits")));
    }
    if (v > kMaxCodepoint || (v >= 0xD800 && v <= 0xDFFF)) {
      return Fail(Error("escape is not a Unicode scalar value"));
    }
    *c = v;
    return true;
  }

  bool ParseLiteral(Expr* out) {
    ++pos_;  // "
    std::string bytes;
    while (true) {
      if (pos_ >= s_.size()) return Fail(Error("unterminated literal"));
      if (s_[pos_] == '"') {
        ++pos_;
        break;
      }
      if (s_[pos_] == '\n' || s_[pos_] == '\r') return Fail(Error("newline in a literal"));
      uint32_t c = 0;
      if (!ParseChar(&c)) return false;
      AppendUtf8(c, &bytes);
    }
    *out = Literal(bytes);
    return true;
  }

  bool ParseClass(Expr* out) {
    CodepointSet set;
    if (!ScanCharClass(
            s_, &pos_, /*leading_bracket_is_literal=*/false,
            [&](ClassItem* item) {
              uint32_t c = 0;
              if (!ParseChar(&c)) return false;
              item->set = {{c, c}};
              return true;
            },
            [&](std::string_view message) { return Fail(Error(std::string(message))); }, &set)) {
      return false;
    }
    *out = Class(std::move(set));
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  Grammar grammar_;
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<Grammar> ParseGbnf(std::string_view text) { return GbnfParser(text).Parse(); }

}  // namespace moeserve::structured

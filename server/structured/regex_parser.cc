#include "server/structured/regex_parser.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/structured/char_class.h"
#include "server/structured/text_util.h"

namespace moeserve::structured {
namespace {

constexpr int kMaxNesting = 256;
constexpr int64_t kMaxRepeatCount = 1 << 20;

const CodepointSet& Digits() {
  static const CodepointSet* s = new CodepointSet{{'0', '9'}};
  return *s;
}
const CodepointSet& WordChars() {
  static const CodepointSet* s = new CodepointSet(Canonicalize({{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}));
  return *s;
}
// Python's \s on str: the code points for which str.isspace() is true.
const CodepointSet& SpaceChars() {
  static const CodepointSet* s = new CodepointSet(Canonicalize({{'\t', '\r'},
                                                                {0x1C, 0x20},
                                                                {0x85, 0x85},
                                                                {0xA0, 0xA0},
                                                                {0x1680, 0x1680},
                                                                {0x2000, 0x200A},
                                                                {0x2028, 0x2029},
                                                                {0x202F, 0x202F},
                                                                {0x205F, 0x205F},
                                                                {0x3000, 0x3000}}));
  return *s;
}
// \D and \W are AsciiComplement (char_class.h): Python's classes also hold non-ASCII digits and
// letters; staying within ASCII keeps every output inside Python's language.

class RegexParser {
 public:
  explicit RegexParser(std::string_view s) : s_(s) {}

  absl::StatusOr<Expr> Parse() {
    Expr e;
    if (!ParseAlternation(0, &e)) return status_;
    if (pos_ < s_.size()) {
      return Error(s_[pos_] == ')' ? "unbalanced ')'" : "unexpected character");
    }
    return e;
  }

 private:
  absl::Status Error(const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat("regex: ", message, " at offset ", pos_));
  }
  bool Fail(const std::string& message) {
    status_ = Error(message);
    return false;
  }

  bool ParseAlternation(int depth, Expr* out) {
    if (depth > kMaxNesting) return Fail("nesting deeper than 256");
    std::vector<Expr> alts;
    while (true) {
      Expr seq;
      if (!ParseSequence(depth, &seq)) return false;
      alts.push_back(std::move(seq));
      if (pos_ < s_.size() && s_[pos_] == '|') {
        ++pos_;
        continue;
      }
      break;
    }
    *out = Choice(std::move(alts));
    return true;
  }

  // True when pos_ is at the end of a top-level alternative.
  bool AtAlternativeEnd() const { return pos_ >= s_.size() || s_[pos_] == '|'; }

  bool ParseSequence(int depth, Expr* out) {
    std::vector<Expr> items;
    bool ended = false;  // a `$` was seen
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == '|' || c == ')') break;
      if (ended) return Fail("'$' is only supported at the end of the pattern");
      if (c == '^' || (c == '\\' && pos_ + 1 < s_.size() && s_[pos_ + 1] == 'A')) {
        if (depth > 0 || !items.empty()) return Fail("'^' is only supported at the start of the pattern");
        pos_ += c == '^' ? 1 : 2;
        continue;
      }
      if (c == '$' || (c == '\\' && pos_ + 1 < s_.size() && s_[pos_ + 1] == 'Z')) {
        pos_ += c == '$' ? 1 : 2;
        if (depth > 0 || !AtAlternativeEnd()) return Fail("'$' is only supported at the end of the pattern");
        ended = true;
        continue;
      }
      Expr atom;
      if (!ParseAtom(depth, &atom)) return false;
      if (!ParseQuantifiers(&atom)) return false;
      items.push_back(std::move(atom));
    }
    *out = Seq(std::move(items));
    return true;
  }

  bool ParseQuantifiers(Expr* atom) {
    bool quantified = false;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      int64_t min = 0, max = -1;
      if (c == '*') {
        ++pos_;
      } else if (c == '+') {
        ++pos_;
        min = 1;
      } else if (c == '?') {
        ++pos_;
        max = 1;
      } else if (c == '{') {
        const size_t save = pos_;
        if (!ParseBraces(&min, &max)) {
          if (!status_.ok()) return false;
          pos_ = save;  // a literal '{'
          return true;
        }
      } else {
        return true;
      }
      if (quantified) return Fail("multiple repeat");
      quantified = true;
      if (pos_ < s_.size() && s_[pos_] == '?') {
        ++pos_;  // lazy: the same language
      } else if (pos_ < s_.size() && s_[pos_] == '+') {
        return Fail("possessive quantifiers are not supported");
      }
      *atom = Repeat(std::move(*atom), static_cast<int32_t>(min), static_cast<int32_t>(max));
    }
    return true;
  }

  // {m}, {m,}, {m,n}, {,n}; false (status_ OK) when the text is not a quantifier.
  bool ParseBraces(int64_t* min, int64_t* max) {
    ++pos_;  // {
    const bool has_min = ParseInt(min);
    if (pos_ < s_.size() && s_[pos_] == '}') {
      if (!has_min) return false;
      ++pos_;
      *max = *min;
    } else if (pos_ < s_.size() && s_[pos_] == ',') {
      ++pos_;
      if (!has_min) *min = 0;
      if (!ParseInt(max)) *max = -1;
      if (pos_ >= s_.size() || s_[pos_] != '}') return false;
      ++pos_;
    } else {
      return false;
    }
    if (*min > kMaxRepeatCount || *max > kMaxRepeatCount) {
      return Fail(absl::StrCat("repetition count above ", kMaxRepeatCount));
    }
    if (*max >= 0 && *max < *min) return Fail("repetition {m,n} with n < m");
    return true;
  }

  bool ParseInt(int64_t* value) { return ParseCount(s_, &pos_, kMaxRepeatCount, value); }

  bool ParseAtom(int depth, Expr* out) {
    const char c = s_[pos_];
    if (c == '(') return ParseGroup(depth, out);
    if (c == '[') return ParseClass(out);
    if (c == '.') {
      ++pos_;
      *out = Class(Complement({{'\n', '\n'}}));
      return true;
    }
    if (c == '*' || c == '+' || c == '?') return Fail("nothing to repeat");
    if (c == '{') {
      int64_t min = 0, max = 0;
      const size_t save = pos_;
      if (ParseBraces(&min, &max)) {
        pos_ = save;
        return Fail("nothing to repeat");
      }
      if (!status_.ok()) return false;
      pos_ = save + 1;
      *out = Char('{');
      return true;
    }
    if (c == '\\') {
      CodepointSet set;
      if (!ParseEscape(false, &set)) return false;
      *out = Class(std::move(set));
      return true;
    }
    uint32_t cp = 0;
    if (!DecodeUtf8(s_, &pos_, &cp)) return Fail("invalid UTF-8");
    *out = Char(cp);
    return true;
  }

  bool ParseGroup(int depth, Expr* out) {
    ++pos_;  // (
    if (pos_ < s_.size() && s_[pos_] == '?') {
      ++pos_;
      const char k = pos_ < s_.size() ? s_[pos_] : '\0';
      if (k == ':') {
        ++pos_;
      } else if (k == 'P' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '<') {
        pos_ += 2;
        if (!SkipGroupName()) return false;
      } else if (k == '<' && pos_ + 1 < s_.size() && s_[pos_ + 1] != '=' && s_[pos_ + 1] != '!') {
        ++pos_;
        if (!SkipGroupName()) return false;
      } else if (k == '=' || k == '!') {
        return Fail("lookahead is not supported");
      } else if (k == '<') {
        return Fail("lookbehind is not supported");
      } else if (k == '>') {
        return Fail("atomic groups are not supported");
      } else if (k == '(') {
        return Fail("conditional groups are not supported");
      } else if (k == 'P' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '=') {
        return Fail("backreferences are not supported");
      } else if (k == '#') {
        return Fail("comment groups are not supported");
      } else {
        return Fail("inline flags are not supported");
      }
    }
    if (!ParseAlternation(depth + 1, out)) return false;
    if (pos_ >= s_.size() || s_[pos_] != ')') return Fail("missing ')'");
    ++pos_;
    return true;
  }

  bool SkipGroupName() {
    const size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != '>') ++pos_;
    if (pos_ >= s_.size() || pos_ == start) return Fail("bad group name");
    ++pos_;
    return true;
  }

  // An escape at pos_ ('\\'); in a class, \b is a backspace.
  bool ParseEscape(bool in_class, CodepointSet* out) {
    if (pos_ + 1 >= s_.size()) return Fail("bad escape (end of pattern)");
    const char e = s_[pos_ + 1];
    pos_ += 2;
    auto one = [&](uint32_t c) {
      *out = {{c, c}};
      return true;
    };
    switch (e) {
      case 'd': *out = Digits(); return true;
      case 'D': *out = AsciiComplement(Digits()); return true;
      case 'w': *out = WordChars(); return true;
      case 'W': *out = AsciiComplement(WordChars()); return true;
      case 's': *out = SpaceChars(); return true;
      case 'S': *out = Complement(SpaceChars()); return true;
      case 't': return one('\t');
      case 'n': return one('\n');
      case 'r': return one('\r');
      case 'f': return one('\f');
      case 'v': return one('\v');
      case 'a': return one('\a');
      case '0': return one(0);
      case 'b':
        if (in_class) return one('\b');
        return Fail("word boundaries are not supported");
      case 'B': return Fail("word boundaries are not supported");
      case 'x': return ParseHex(2, out);
      case 'u': return ParseHex(4, out);
      case 'U': return ParseHex(8, out);
      case 'p':
      case 'P': return Fail("Unicode property classes (\\p{...}) are not supported");
      case 'N': return Fail("named characters (\\N{...}) are not supported");
      case 'A':
      case 'Z':
      case 'z':
      case 'G': return Fail("anchors are only supported at the start and end of the pattern");
      case 'k': return Fail("backreferences are not supported");
      default: break;
    }
    if (e >= '1' && e <= '9') return Fail("backreferences are not supported");
    if (static_cast<uint8_t>(e) < 0x80 && !((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z'))) {
      return one(static_cast<uint8_t>(e));
    }
    pos_ -= 1;
    uint32_t cp = 0;
    if (static_cast<uint8_t>(e) >= 0x80 && DecodeUtf8(s_, &pos_, &cp)) return one(cp);
    return Fail(absl::StrCat("bad escape '\\", std::string(1, e), "'"));
  }

  bool ParseHex(int digits, CodepointSet* out) {
    uint32_t v = 0;
    if (!ParseHexDigits(s_, &pos_, digits, &v)) return Fail(absl::StrCat("expected ", digits, " hex digits"));
    if (v > kMaxCodepoint) return Fail("code point above U+10FFFF");
    *out = Canonicalize({{v, v}});  // a surrogate becomes the empty set
    return true;
  }

  bool ParseClass(Expr* out) {
    CodepointSet set;
    if (!ScanCharClass(
            s_, &pos_, /*leading_bracket_is_literal=*/true,
            [&](ClassItem* item) {
              if (s_[pos_] != '\\') {
                uint32_t cp = 0;
                if (!DecodeUtf8(s_, &pos_, &cp)) return Fail("invalid UTF-8");
                item->set = {{cp, cp}};
                return true;
              }
              const char e = pos_ + 1 < s_.size() ? s_[pos_ + 1] : '\0';
              item->shorthand = e == 'd' || e == 'D' || e == 'w' || e == 'W' || e == 's' || e == 'S';
              // Negation stays in ASCII when the class holds \d \w \D or \W.
              item->ascii_negation = e == 'd' || e == 'D' || e == 'w' || e == 'W';
              return ParseEscape(true, &item->set);
            },
            [&](std::string_view message) { return Fail(std::string(message)); }, &set)) {
      return false;
    }
    *out = Class(std::move(set));
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<Expr> ParseRegex(std::string_view pattern) { return RegexParser(pattern).Parse(); }

}  // namespace moeserve::structured

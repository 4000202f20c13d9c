#include "server/structured/grammar.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"

namespace moeserve::structured {
namespace {

constexpr uint32_t kSurrogateLo = 0xD800, kSurrogateHi = 0xDFFF;

// Removes the surrogate block from sorted, disjoint ranges.
CodepointSet DropSurrogates(const CodepointSet& in) {
  CodepointSet out;
  for (const CodepointRange& r : in) {
    if (r.hi < kSurrogateLo || r.lo > kSurrogateHi) {
      out.push_back(r);
      continue;
    }
    if (r.lo < kSurrogateLo) out.push_back({r.lo, kSurrogateLo - 1});
    if (r.hi > kSurrogateHi) out.push_back({kSurrogateHi + 1, r.hi});
  }
  return out;
}

}  // namespace

CodepointSet Canonicalize(std::vector<CodepointRange> ranges) {
  for (CodepointRange& r : ranges) {
    if (r.lo > r.hi) std::swap(r.lo, r.hi);
    r.hi = std::min(r.hi, kMaxCodepoint);
  }
  std::sort(ranges.begin(), ranges.end(), [](const CodepointRange& a, const CodepointRange& b) { return a.lo < b.lo; });
  CodepointSet merged;
  for (const CodepointRange& r : ranges) {
    if (r.lo > kMaxCodepoint) continue;
    if (!merged.empty() && r.lo <= merged.back().hi + 1) {
      merged.back().hi = std::max(merged.back().hi, r.hi);
    } else {
      merged.push_back(r);
    }
  }
  return DropSurrogates(merged);
}

CodepointSet Complement(const CodepointSet& set) {
  CodepointSet out;
  uint32_t next = 0;
  for (const CodepointRange& r : set) {
    if (r.lo > next) out.push_back({next, r.lo - 1});
    next = r.hi + 1;
  }
  if (next <= kMaxCodepoint) out.push_back({next, kMaxCodepoint});
  return Canonicalize(std::move(out));
}

CodepointSet Union(const CodepointSet& a, const CodepointSet& b) {
  std::vector<CodepointRange> all = a;
  all.insert(all.end(), b.begin(), b.end());
  return Canonicalize(std::move(all));
}

CodepointSet Intersect(const CodepointSet& a, const CodepointSet& b) {
  CodepointSet out;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const uint32_t lo = std::max(a[i].lo, b[j].lo), hi = std::min(a[i].hi, b[j].hi);
    if (lo <= hi) out.push_back({lo, hi});
    if (a[i].hi < b[j].hi) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}

Expr Empty() { return Expr{}; }

Expr Literal(std::string_view bytes) {
  if (bytes.empty()) return Empty();
  Expr e;
  e.kind = Expr::Kind::kLiteral;
  e.text = std::string(bytes);
  return e;
}

Expr Class(CodepointSet set) {
  Expr e;
  e.kind = Expr::Kind::kClass;
  e.set = std::move(set);
  return e;
}

Expr Char(uint32_t codepoint) { return Range(codepoint, codepoint); }

Expr Range(uint32_t lo, uint32_t hi) { return Class(Canonicalize({{lo, hi}})); }

Expr Seq(std::vector<Expr> items) {
  std::vector<Expr> flat;
  for (Expr& item : items) {
    if (item.kind == Expr::Kind::kEmpty) continue;
    if (item.kind == Expr::Kind::kSequence) {
      for (Expr& c : item.children) flat.push_back(std::move(c));
    } else {
      flat.push_back(std::move(item));
    }
  }
  if (flat.empty()) return Empty();
  if (flat.size() == 1) return std::move(flat[0]);
  Expr e;
  e.kind = Expr::Kind::kSequence;
  e.children = std::move(flat);
  return e;
}

Expr Choice(std::vector<Expr> items) {
  if (items.size() == 1) return std::move(items[0]);
  Expr e;
  e.kind = Expr::Kind::kChoice;
  e.children = std::move(items);
  return e;
}

Expr Repeat(Expr item, int32_t min, int32_t max) {
  if (max == 0) return Empty();
  if (min == 1 && max == 1) return item;
  Expr e;
  e.kind = Expr::Kind::kRepeat;
  e.min = min;
  e.max = max;
  e.children.push_back(std::move(item));
  return e;
}

Expr Star(Expr item) { return Repeat(std::move(item), 0, -1); }
Expr Plus(Expr item) { return Repeat(std::move(item), 1, -1); }
Expr Optional(Expr item) { return Repeat(std::move(item), 0, 1); }

Expr Ref(int32_t rule) {
  Expr e;
  e.kind = Expr::Kind::kRuleRef;
  e.rule = rule;
  return e;
}

Expr Intersect(std::vector<Expr> items) {
  if (items.size() == 1) return std::move(items[0]);
  Expr e;
  e.kind = Expr::Kind::kIntersect;
  e.children = std::move(items);
  return e;
}

Expr Nothing() {
  Expr e;
  e.kind = Expr::Kind::kChoice;
  return e;
}

Expr FreeText(const std::vector<std::string>& avoid, std::string_view until) {
  Expr e;
  e.kind = Expr::Kind::kFreeText;
  e.text = std::string(until);
  for (const std::string& word : avoid) e.children.push_back(Literal(word));
  return e;
}

int32_t Grammar::AddRule(std::string name) {
  rules.push_back(Rule{std::move(name), Empty()});
  return static_cast<int32_t>(rules.size()) - 1;
}

int32_t Grammar::Find(std::string_view name) const {
  for (size_t i = 0; i < rules.size(); ++i) {
    if (rules[i].name == name) return static_cast<int32_t>(i);
  }
  return -1;
}

void AppendUtf8(uint32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

bool DecodeUtf8(std::string_view text, size_t* pos, uint32_t* codepoint) {
  const size_t i = *pos;
  if (i >= text.size()) return false;
  const auto b0 = static_cast<uint8_t>(text[i]);
  int len = 0;
  uint32_t c = 0, min = 0;
  if (b0 < 0x80) {
    len = 1, c = b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, c = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, c = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, c = b0 & 0x07, min = 0x10000;
  } else {
    return false;
  }
  if (i + len > text.size()) return false;
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<uint8_t>(text[i + k]);
    if ((b & 0xC0) != 0x80) return false;
    c = (c << 6) | (b & 0x3F);
  }
  if (c < min || c > kMaxCodepoint || (c >= kSurrogateLo && c <= kSurrogateHi)) return false;
  *codepoint = c;
  *pos = i + len;
  return true;
}

namespace {

// A code point as GBNF source inside a literal (in_class false) or a class.
void AppendEscaped(uint32_t c, bool in_class, std::string* out) {
  switch (c) {
    case '\n': *out += "\\n"; return;
    case '\r': *out += "\\r"; return;
    case '\t': *out += "\\t"; return;
    case '\\': *out += "\\\\"; return;
    default: break;
  }
  if (!in_class && c == '"') {
    *out += "\\\"";
    return;
  }
  if (in_class && (c == ']' || c == '[' || c == '-' || c == '^')) {
    *out += '\\';
    out->push_back(static_cast<char>(c));
    return;
  }
  if (c < 0x20 || c == 0x7F) {
    *out += absl::StrFormat("\\x%02X", c);
  } else if (c >= 0x80 && c < 0xA0) {
    *out += absl::StrFormat("\\u%04X", c);
  } else if (c > 0xFFFF) {
    *out += absl::StrFormat("\\U%08X", c);
  } else if (c >= 0x80 && (c < 0xA1 || c == 0xAD || (c >= 0xFFF0))) {
    *out += absl::StrFormat("\\u%04X", c);
  } else {
    AppendUtf8(c, out);
  }
}

void Print(const Grammar& g, const Expr& e, bool nested, std::string* out) {
  switch (e.kind) {
    case Expr::Kind::kEmpty: *out += "\"\""; return;
    case Expr::Kind::kLiteral: {
      *out += '"';
      size_t pos = 0;
      while (pos < e.text.size()) {
        uint32_t c = 0;
        if (!DecodeUtf8(e.text, &pos, &c)) {
          c = static_cast<uint8_t>(e.text[pos++]);  // not UTF-8: printed as U+00XX
        }
        AppendEscaped(c, false, out);
      }
      *out += '"';
      return;
    }
    case Expr::Kind::kClass:
      *out += '[';
      for (const CodepointRange& r : e.set) {
        AppendEscaped(r.lo, true, out);
        if (r.hi != r.lo) {
          if (r.hi != r.lo + 1) *out += '-';
          AppendEscaped(r.hi, true, out);
        }
      }
      *out += ']';
      return;
    case Expr::Kind::kSequence:
    case Expr::Kind::kChoice: {
      if (e.children.empty()) {  // an empty choice: a class with no code point
        *out += "[^\\x00-\\U0010FFFF]";
        return;
      }
      const bool paren = nested;
      if (paren) *out += "( ";
      for (size_t i = 0; i < e.children.size(); ++i) {
        if (i > 0) *out += e.kind == Expr::Kind::kChoice ? " | " : " ";
        Print(g, e.children[i], e.kind == Expr::Kind::kSequence || e.children[i].kind == Expr::Kind::kChoice, out);
      }
      if (paren) *out += " )";
      return;
    }
    case Expr::Kind::kRepeat: {
      Print(g, e.children[0], true, out);
      if (e.min == 0 && e.max < 0) {
        *out += '*';
      } else if (e.min == 1 && e.max < 0) {
        *out += '+';
      } else if (e.min == 0 && e.max == 1) {
        *out += '?';
      } else if (e.max < 0) {
        *out += absl::StrFormat("{%d,}", e.min);
      } else if (e.min == e.max) {
        *out += absl::StrFormat("{%d}", e.min);
      } else {
        *out += absl::StrFormat("{%d,%d}", e.min, e.max);
      }
      return;
    }
    case Expr::Kind::kRuleRef: *out += g.rules[e.rule].name; return;
    case Expr::Kind::kIntersect:  // not GBNF: printed for debugging only
      *out += "( ";
      for (size_t i = 0; i < e.children.size(); ++i) {
        if (i > 0) *out += " & ";
        Print(g, e.children[i], true, out);
      }
      *out += " )";
      return;
    case Expr::Kind::kFreeText: {  // not GBNF: printed for debugging only
      *out += "( free-text";
      for (const Expr& word : e.children) {
        *out += " !";
        Print(g, word, true, out);
      }
      if (!e.text.empty()) {
        *out += " until ";
        Print(g, Literal(e.text), true, out);
      }
      *out += " )";
      return;
    }
  }
}

}  // namespace

std::string ToGbnf(const Grammar& grammar) {
  std::string out;
  auto rule = [&](int32_t i) {
    out += grammar.rules[i].name;
    out += " ::= ";
    Print(grammar, grammar.rules[i].body, false, &out);
    out += '\n';
  };
  if (grammar.root >= 0 && grammar.root < static_cast<int32_t>(grammar.rules.size())) {
    rule(grammar.root);
  }
  for (int32_t i = 0; i < static_cast<int32_t>(grammar.rules.size()); ++i) {
    if (i != grammar.root) rule(i);
  }
  return out;
}

}  // namespace moeserve::structured

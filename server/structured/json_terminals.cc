#include "server/structured/json_terminals.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/structured/regex_parser.h"

namespace moeserve::structured {
namespace {

// Code points that stand for themselves in a JSON string.
const CodepointSet& UnescapedChars() {
  static const CodepointSet* s = new CodepointSet(Complement(Canonicalize({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}})));
  return *s;
}

Expr HexDigit() { return Class(Canonicalize({{'0', '9'}, {'A', 'F'}, {'a', 'f'}})); }

// \uXXXX, not a surrogate: D800-DFFF are excluded.
Expr UnicodeEscape() {
  Expr hex3 = Repeat(HexDigit(), 3, 3);
  return Seq({Literal("\\u"),
              Choice({Seq({Class(Canonicalize({{'0', '9'}, {'A', 'C'}, {'a', 'c'}})), hex3}),
                      Seq({Class(Canonicalize({{'D', 'D'}, {'d', 'd'}})), Range('0', '7'), Repeat(HexDigit(), 2, 2)}),
                      Seq({Class(Canonicalize({{'E', 'F'}, {'e', 'f'}})), Repeat(HexDigit(), 3, 3)})})});
}

void AppendJsonEscaped(uint32_t c, std::string* out) {
  switch (c) {
    case '"': *out += "\\\""; return;
    case '\\': *out += "\\\\"; return;
    case '\b': *out += "\\b"; return;
    case '\f': *out += "\\f"; return;
    case '\n': *out += "\\n"; return;
    case '\r': *out += "\\r"; return;
    case '\t': *out += "\\t"; return;
    default: break;
  }
  if (c < 0x20) {
    *out += absl::StrFormat("\\u%04x", c);
  } else {
    AppendUtf8(c, out);
  }
}

std::string Digits(uint64_t v) { return absl::StrCat(v); }
uint64_t Pow10(int n) {
  uint64_t p = 1;
  for (int i = 0; i < n; ++i) p *= 10;
  return p;
}

// Digit strings of equal length n from x to y (x <= y), leading zeros allowed.
Expr SameLength(const std::string& x, const std::string& y) {
  if (x == y) return Literal(x);
  if (x.find_first_not_of('0') == std::string::npos && y.find_first_not_of('9') == std::string::npos) {
    return Repeat(Range('0', '9'), static_cast<int32_t>(x.size()), static_cast<int32_t>(x.size()));
  }
  if (x.size() == 1) return Range(x[0], y[0]);
  if (x[0] == y[0]) return Seq({Literal(x.substr(0, 1)), SameLength(x.substr(1), y.substr(1))});
  const size_t n = x.size() - 1;
  std::vector<Expr> alts;
  alts.push_back(Seq({Literal(x.substr(0, 1)), SameLength(x.substr(1), std::string(n, '9'))}));
  if (x[0] + 1 <= y[0] - 1) alts.push_back(Seq({Range(x[0] + 1, y[0] - 1), Repeat(Range('0', '9'), n, n)}));
  alts.push_back(Seq({Literal(y.substr(0, 1)), SameLength(std::string(n, '0'), y.substr(1))}));
  return Choice(std::move(alts));
}

// Decimal numerals of the integers in [a, b] (no leading zeros).
Expr NonNegativeRange(uint64_t a, uint64_t b) {
  std::vector<Expr> alts;
  if (a > b) return Nothing();
  const int da = static_cast<int>(Digits(a).size()), db = static_cast<int>(Digits(b).size());
  for (int len = da; len <= db; ++len) {
    const uint64_t lo = std::max(a, len == 1 ? 0 : Pow10(len - 1));
    const uint64_t hi = std::min(b, len >= 20 ? b : Pow10(len) - 1);
    if (lo <= hi) alts.push_back(SameLength(Digits(lo), Digits(hi)));
  }
  return Choice(std::move(alts));
}

constexpr uint64_t kMaxMagnitude = 9'999'999'999'999'999'999ull;  // 19 digits

Expr OptionalFraction() { return Optional(Seq({Literal("."), Repeat(Range('0', '9'), 1, kMaxFractionDigits)})); }
Expr ZeroFraction() { return Optional(Seq({Literal("."), Repeat(Char('0'), 1, kMaxFractionDigits)})); }
// A fraction with a nonzero digit.
Expr NonZeroFraction() {
  return Seq({Literal("."), Repeat(Range('0', '9'), 0, kMaxFractionDigits - 1), Range('1', '9'),
              Repeat(Range('0', '9'), 0, kMaxFractionDigits - 1)});
}

// Magnitudes m = I.F with p <(=) m <(=) q (q nullopt: unbounded), p >= 0.
Expr MagnitudeRange(uint64_t p, bool p_excl, std::optional<uint64_t> q, bool q_excl) {
  std::vector<Expr> alts;
  const uint64_t top = q.value_or(kMaxMagnitude);
  if (q.has_value() && *q == p) {
    if (!p_excl && !q_excl) alts.push_back(Seq({Literal(Digits(p)), ZeroFraction()}));
    return Choice(std::move(alts));
  }
  // Integer part strictly inside: any fraction.
  if (p + 1 <= (q.has_value() ? top - 1 : top)) {
    alts.push_back(Seq({NonNegativeRange(p + 1, q.has_value() ? top - 1 : top), OptionalFraction()}));
  }
  // Integer part p.
  alts.push_back(Seq({Literal(Digits(p)), p_excl ? NonZeroFraction() : OptionalFraction()}));
  // Integer part q.
  if (q.has_value() && !q_excl) alts.push_back(Seq({Literal(Digits(*q)), ZeroFraction()}));
  return Choice(std::move(alts));
}

uint64_t Magnitude(int64_t v) { return v < 0 ? ~static_cast<uint64_t>(v) + 1 : static_cast<uint64_t>(v); }

}  // namespace

Expr JsonStringChar() {
  return Choice(
      {Class(UnescapedChars()),
       Seq({Literal("\\"),
            Class(Canonicalize(
                {{'"', '"'}, {'\\', '\\'}, {'/', '/'}, {'b', 'b'}, {'f', 'f'}, {'n', 'n'}, {'r', 'r'}, {'t', 't'}}))}),
       UnicodeEscape()});
}

Expr JsonEscape(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kLiteral: {
      std::string out;
      size_t pos = 0;
      while (pos < e.text.size()) {
        uint32_t c = 0;
        if (!DecodeUtf8(e.text, &pos, &c)) return Nothing();  // not text: no JSON encoding
        AppendJsonEscaped(c, &out);
      }
      return Literal(out);
    }
    case Expr::Kind::kClass: {
      std::vector<Expr> alts;
      const CodepointSet plain = Intersect(e.set, UnescapedChars());
      if (!plain.empty()) alts.push_back(Class(plain));
      for (const CodepointRange& r : Intersect(e.set, Complement(UnescapedChars()))) {
        for (uint32_t c = r.lo; c <= r.hi; ++c) {
          std::string escaped;
          AppendJsonEscaped(c, &escaped);
          alts.push_back(Literal(escaped));
        }
      }
      return alts.empty() ? Nothing() : Choice(std::move(alts));
    }
    default: {
      Expr out = e;
      for (Expr& c : out.children) c = JsonEscape(c);
      return out;
    }
  }
}

std::string JsonQuote(std::string_view value) {
  std::string out = "\"";
  size_t pos = 0;
  while (pos < value.size()) {
    uint32_t c = 0;
    if (!DecodeUtf8(value, &pos, &c)) {
      c = 0xFFFD;
      ++pos;
    }
    AppendJsonEscaped(c, &out);
  }
  out += '"';
  return out;
}

Expr JsonStringLiteral(std::string_view value) { return Literal(JsonQuote(value)); }

Expr JsonInteger() {
  return Seq({Optional(Literal("-")),
              Choice({Literal("0"), Seq({Range('1', '9'), Repeat(Range('0', '9'), 0, kMaxIntegerDigits - 1)})})});
}

Expr JsonNumber() {
  return Seq({JsonInteger(), OptionalFraction(),
              Optional(Seq({Class(Canonicalize({{'E', 'E'}, {'e', 'e'}})),
                            Optional(Class(Canonicalize({{'+', '+'}, {'-', '-'}}))),
                            Repeat(Range('0', '9'), 1, kMaxExponentDigits)}))});
}

Expr IntegerRange(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  std::vector<Expr> alts;
  // Non-negative part.
  if (!hi.has_value() || *hi >= 0) {
    const uint64_t a = lo.has_value() && *lo > 0 ? static_cast<uint64_t>(*lo) : 0;
    const uint64_t b = hi.has_value() ? static_cast<uint64_t>(*hi) : kMaxMagnitude;
    if (a <= b) alts.push_back(NonNegativeRange(a, b));
  }
  // Negative part: magnitudes [|min(hi, -1)|, |lo|].
  if (!lo.has_value() || *lo < 0) {
    const uint64_t a = hi.has_value() && *hi < 0 ? Magnitude(*hi) : 1;
    const uint64_t b = lo.has_value() ? Magnitude(*lo) : kMaxMagnitude;
    if (a <= b) alts.push_back(Seq({Literal("-"), NonNegativeRange(a, b)}));
  }
  return alts.empty() ? Nothing() : Choice(std::move(alts));
}

Expr NumberRange(std::optional<NumberBound> lo, std::optional<NumberBound> hi) {
  if (lo.has_value() && hi.has_value() &&
      (lo->value > hi->value || (lo->value == hi->value && (lo->exclusive || hi->exclusive)))) {
    return Nothing();
  }
  std::vector<Expr> alts;
  // v >= 0 (strings without '-').
  if (!hi.has_value() || hi->value > 0 || (hi->value == 0 && !hi->exclusive)) {
    uint64_t p = 0;
    bool p_excl = false;
    if (lo.has_value() && lo->value >= 0) {
      p = static_cast<uint64_t>(lo->value);
      p_excl = lo->exclusive;
    }
    std::optional<uint64_t> q;
    bool q_excl = false;
    if (hi.has_value()) {
      q = static_cast<uint64_t>(hi->value);
      q_excl = hi->exclusive;
    }
    alts.push_back(MagnitudeRange(p, p_excl, q, q_excl));
  }
  // v < 0: "-m" with m in [max(-hi, 0), -lo].
  if (!lo.has_value() || lo->value < 0) {
    uint64_t p = 0;
    bool p_excl = true;  // m > 0: zero is produced by the non-negative side
    if (hi.has_value() && hi->value < 0) {
      p = Magnitude(hi->value);
      p_excl = hi->exclusive;
    }
    std::optional<uint64_t> q;
    bool q_excl = false;
    if (lo.has_value()) {
      q = Magnitude(lo->value);
      q_excl = lo->exclusive;
    }
    if (!q.has_value() || p < *q || (p == *q && !p_excl && !q_excl)) {
      alts.push_back(Seq({Literal("-"), MagnitudeRange(p, p_excl, q, q_excl)}));
    }
  }
  return alts.empty() ? Nothing() : Choice(std::move(alts));
}

absl::StatusOr<Expr> FormatLanguage(std::string_view format) {
  static const std::string kYear = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})";
  static const std::string kMonthDay =
      "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|"
      "02-(?:0[1-9]|1[0-9]|2[0-8]))";
  static const std::string kLeapDay =
      "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)-02-29";
  static const std::string kDate = "(?:" + kYear + "-" + kMonthDay + "|" + kLeapDay + ")";
  static const std::string kTime =
      "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
  static const std::string kOctet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
  std::string pattern;
  if (format == "date") {
    pattern = kDate;
  } else if (format == "time") {
    pattern = kTime;
  } else if (format == "date-time") {
    pattern = kDate + "T" + kTime;
  } else if (format == "uuid") {
    pattern = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
  } else if (format == "email") {
    pattern = "[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\\.){1,4}[A-Za-z]{2,24}";
  } else if (format == "ipv4") {
    pattern = kOctet + "(?:\\." + kOctet + "){3}";
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "format \"", std::string(format), "\" is not supported (supported: date, time, date-time, uuid, email, ipv4)"));
  }
  return ParseRegex(pattern);
}

Expr ContentExcluding(const std::vector<std::string>& excluded) {
  // A trie over the excluded strings' code points; strings with characters that need escapes can
  // never be produced here and are ignored.
  struct Node {
    std::map<uint32_t, int32_t> children;
    bool end = false;
  };
  std::vector<Node> trie(1);
  for (const std::string& s : excluded) {
    std::vector<uint32_t> cps;
    size_t pos = 0;
    bool plain = true;
    while (pos < s.size() && plain) {
      uint32_t c = 0;
      plain = DecodeUtf8(s, &pos, &c) && c >= 0x20 && c != '"' && c != '\\';
      cps.push_back(c);
    }
    if (!plain) continue;
    int32_t n = 0;
    for (uint32_t c : cps) {
      auto it = trie[n].children.find(c);
      if (it == trie[n].children.end()) {
        trie.emplace_back();
        it = trie[n].children.emplace(c, static_cast<int32_t>(trie.size()) - 1).first;
      }
      n = it->second;
    }
    trie[n].end = true;
  }
  const Expr any = Star(Class(UnescapedChars()));
  // Built bottom-up from the deepest nodes (children have larger indices).
  std::vector<Expr> built(trie.size());
  for (int32_t n = static_cast<int32_t>(trie.size()) - 1; n >= 0; --n) {
    std::vector<Expr> alts;
    if (!trie[n].end) alts.push_back(Empty());
    std::vector<CodepointRange> used;
    for (const auto& [c, child] : trie[n].children) {
      alts.push_back(Seq({Char(c), std::move(built[child])}));
      used.push_back({c, c});
    }
    const CodepointSet rest = Intersect(UnescapedChars(), Complement(Canonicalize(std::move(used))));
    if (!rest.empty()) alts.push_back(Seq({Class(rest), any}));
    built[n] = Choice(std::move(alts));
  }
  return std::move(built[0]);
}

}  // namespace moeserve::structured

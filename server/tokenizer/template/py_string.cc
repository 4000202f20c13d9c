#include "server/tokenizer/template/py_string.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/tokenizer/template/builtins.h"
#include "server/tokenizer/template/lexer.h"
#include "server/tokenizer/unicode.h"
#include "unicode/locid.h"
#include "unicode/uchar.h"
#include "unicode/unistr.h"

namespace moeserve::jinja {
namespace {

absl::Status TypeError(const std::string& message) { return absl::InvalidArgumentError(message); }

// Work units per part split() makes: a string and a list slot, about a loop iteration's cost.
constexpr int64_t kPartSteps = 4;

}  // namespace

// Binds positional and keyword arguments to `params`; missing ones stay Undefined.
absl::StatusOr<std::vector<Value>> BindArgs(const std::string& fn, const CallArgs& args,
                                            std::initializer_list<std::string_view> params) {
  std::vector<Value> out(params.size());
  if (args.positional.size() > params.size()) {
    return TypeError(
        absl::StrCat(fn, "() takes at most ", params.size(), " arguments (", args.positional.size(), " given)"));
  }
  for (size_t i = 0; i < args.positional.size(); ++i) out[i] = args.positional[i];
  for (const auto& [key, value] : args.named) {
    size_t i = 0;
    for (std::string_view p : params) {
      if (p == key) break;
      ++i;
    }
    if (i == params.size()) {
      return TypeError(absl::StrCat(fn, "() got an unexpected keyword argument '", key, "'"));
    }
    out[i] = value;
  }
  return out;
}

// Code point boundaries of a UTF-8 string: offsets[i] is where character i starts.
std::vector<size_t> CharOffsets(const std::string& s) {
  std::vector<size_t> offsets;
  for (size_t i = 0; i < s.size(); i += Utf8CharLength(s[i])) offsets.push_back(i);
  offsets.push_back(s.size());
  return offsets;
}

std::vector<uint32_t> CodePoints(std::string_view s) {
  std::vector<uint32_t> cps;
  size_t pos = 0;
  while (pos < s.size()) cps.push_back(DecodeUtf8Char(s, &pos));
  return cps;
}

std::string FromCodePoints(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) AppendUtf8(cps[i], &out);
  return out;
}

// Python str.strip/lstrip/rstrip; `chars` Undefined/None means whitespace.
absl::StatusOr<std::string> Strip(const std::string& s, const Value& chars, bool left, bool right) {
  std::vector<uint32_t> set;
  const bool whitespace = chars.is_undefined() || chars.is_none();
  if (!whitespace) {
    if (!chars.is_string()) return TypeError("strip arg must be None or str");
    set = CodePoints(chars.as_string());
  }
  auto strip_it = [&](uint32_t cp) {
    return whitespace ? IsPyWhitespace(cp) : std::find(set.begin(), set.end(), cp) != set.end();
  };
  const std::vector<uint32_t> cps = CodePoints(s);
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip_it(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(cps[e - 1])) --e;
  }
  return FromCodePoints(cps, b, e);
}

// Python str.split / rsplit.
absl::StatusOr<List> Split(const std::string& s, const Value& sep_value, const Value& maxsplit_value, bool from_right,
                           Budget& budget) {
  int64_t maxsplit = -1;
  if (!maxsplit_value.is_undefined() && !maxsplit_value.is_none()) {
    if (!maxsplit_value.is_int()) return TypeError("split: maxsplit must be an integer");
    maxsplit = maxsplit_value.as_int();
  }
  std::vector<std::string> parts;
  if (sep_value.is_undefined() || sep_value.is_none()) {
    // Runs of whitespace separate; leading/trailing whitespace yields no empty parts, and the
    // rest after `maxsplit` parts keeps its far end as it is.
    // Whether the character starting (forward) or ending (backward) at byte `at` is whitespace,
    // and where the next one starts / this one starts.
    auto ws_forward = [&](size_t at, size_t* next) {
      *next = at;
      return IsPyWhitespace(DecodeUtf8Char(s, next));
    };
    auto ws_backward = [&](size_t end, size_t* start) {
      size_t b = end - 1;
      while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
      *start = b;
      size_t pos = b;
      return IsPyWhitespace(DecodeUtf8Char(s, &pos));
    };
    size_t next = 0;
    if (!from_right) {
      size_t i = 0;
      while (true) {
        while (i < s.size() && ws_forward(i, &next)) i = next;
        if (i == s.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          parts.push_back(s.substr(i));
          break;
        }
        size_t j = i;
        while (j < s.size() && !ws_forward(j, &next)) j = next;
        RETURN_IF_ERROR(budget.Charge(kPartSteps));
        parts.push_back(s.substr(i, j - i));
        i = j;
      }
    } else {
      size_t e = s.size();
      while (true) {
        while (e > 0 && ws_backward(e, &next)) e = next;
        if (e == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          parts.push_back(s.substr(0, e));
          break;
        }
        size_t j = e;
        while (j > 0 && !ws_backward(j, &next)) j = next;
        RETURN_IF_ERROR(budget.Charge(kPartSteps));
        parts.push_back(s.substr(j, e - j));
        e = j;
      }
      std::reverse(parts.begin(), parts.end());
    }
  } else {
    if (!sep_value.is_string()) return TypeError("must be str or None");
    const std::string& sep = sep_value.as_string();
    if (sep.empty()) return TypeError("empty separator");
    if (!from_right) {
      size_t start = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        const size_t at = s.find(sep, start);
        if (at == std::string::npos) break;
        RETURN_IF_ERROR(budget.Charge(kPartSteps));
        parts.push_back(s.substr(start, at - start));
        start = at + sep.size();
      }
      parts.push_back(s.substr(start));
    } else {
      size_t end = s.size();
      std::vector<std::string> rev;
      while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
        if (end < sep.size()) break;
        const size_t at = s.rfind(sep, end - sep.size());
        if (at == std::string::npos) break;
        RETURN_IF_ERROR(budget.Charge(kPartSteps));
        rev.push_back(s.substr(at + sep.size(), end - at - sep.size()));
        end = at;
      }
      rev.push_back(s.substr(0, end));
      parts.assign(rev.rbegin(), rev.rend());
    }
  }
  List out;
  for (std::string& p : parts) out.emplace_back(std::move(p));
  return out;
}

absl::StatusOr<std::string> Replace(const std::string& s, const Value& old_v, const Value& new_v, const Value& count_v,
                                    Budget& budget) {
  const size_t max_bytes = budget.limits().max_output_bytes;
  if (!old_v.is_string() || !new_v.is_string()) return TypeError("replace() arguments must be str");
  int64_t count = -1;
  if (!count_v.is_undefined() && !count_v.is_none()) {
    if (!count_v.is_int()) return TypeError("replace() count must be an integer");
    count = count_v.as_int();
  }
  const std::string& from = old_v.as_string();
  const std::string& to = new_v.as_string();
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every character and at the end.
    const std::vector<size_t> offsets = CharOffsets(s);
    int64_t done = 0;
    for (size_t i = 0; i + 1 < offsets.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out.append(s, offsets[i], offsets[i + 1] - offsets[i]);
      if (out.size() > max_bytes) return TypeError("replace(): result too large");
    }
    if (count < 0 || done < count) out += to;
    if (out.size() > max_bytes) return TypeError("replace(): result too large");
    RETURN_IF_ERROR(budget.ChargeBytes(out.size()));
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(from, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += to;
    start = at + from.size();
    ++done;
    if (out.size() > max_bytes) return TypeError("replace(): result too large");
  }
  out.append(s, start);
  RETURN_IF_ERROR(budget.ChargeBytes(out.size()));
  return out;
}

std::string CaseMap(const std::string& s, bool upper) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(s);
  if (upper) {
    u.toUpper(icu::Locale::getRoot());
  } else {
    u.toLower(icu::Locale::getRoot());
  }
  std::string out;
  u.toUTF8String(out);
  return out;
}

// Python str.capitalize: first character title-cased, the rest lower-cased.
std::string Capitalize(const std::string& s) {
  const std::vector<uint32_t> cps = CodePoints(s);
  if (cps.empty()) return s;
  std::string out;
  AppendUtf8(static_cast<uint32_t>(u_totitle(static_cast<UChar32>(cps[0]))), &out);
  return out + CaseMap(FromCodePoints(cps, 1, cps.size()), false);
}

// Python str.title: a letter after a non-letter is title-cased, other letters lower-cased.
std::string Title(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (uint32_t cp : CodePoints(s)) {
    const UChar32 c = static_cast<UChar32>(cp);
    const bool cased = u_hasBinaryProperty(c, UCHAR_CASED);
    AppendUtf8(static_cast<uint32_t>(prev_cased ? u_tolower(c) : u_totitle(c)), &out);
    prev_cased = cased;
  }
  return out;
}

namespace {

int64_t CountSubstr(const std::string& s, const std::string& sub) {
  if (sub.empty()) return static_cast<int64_t>(CharOffsets(s).size());
  int64_t n = 0;
  for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
  return n;
}

// Index in code points of the byte offset `at` (npos -> -1).
int64_t CharIndex(const std::string& s, size_t at) {
  if (at == std::string::npos) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < at; i += Utf8CharLength(s[i])) ++n;
  return n;
}

absl::StatusOr<bool> PrefixTest(const std::string& s, const Value& arg, bool suffix, Budget& budget) {
  auto one = [&](const Value& v) -> absl::StatusOr<bool> {
    if (!v.is_string()) return TypeError("startswith/endswith arg must be str or a tuple of str");
    const std::string& p = v.as_string();
    if (p.size() > s.size()) return false;
    return suffix ? s.compare(s.size() - p.size(), p.size(), p) == 0 : s.compare(0, p.size(), p) == 0;
  };
  if (arg.is_list()) {
    for (const Value& v : arg.as_list()) {
      RETURN_IF_ERROR(budget.Charge());
      ASSIGN_OR_RETURN(bool hit, one(v));
      if (hit) return true;
    }
    return false;
  }
  return one(arg);
}

}  // namespace

absl::StatusOr<std::string> Join(const Value& iterable, const std::string& sep, const Value& attribute,
                                 Budget& budget) {
  const size_t max_bytes = budget.limits().max_output_bytes;
  ASSIGN_OR_RETURN(List items, Iterate(iterable, budget));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    Value item = items[i];
    if (attribute.is_string()) {
      ASSIGN_OR_RETURN(item, GetItem(item, attribute, budget));
    }
    const size_t before = out.size();
    const bool fits = AppendStr(item, max_bytes, &out);
    RETURN_IF_ERROR(budget.ChargeBytes(out.size() - before + sep.size()));
    if (!fits || out.size() > max_bytes) return TypeError("join(): result too large");
  }
  return out;
}

namespace {

bool AllChars(const std::string& s, bool (*pred)(UChar32)) {
  const std::vector<uint32_t> cps = CodePoints(s);
  if (cps.empty()) return false;
  for (uint32_t cp : cps) {
    if (!pred(static_cast<UChar32>(cp))) return false;
  }
  return true;
}
bool IsDigitCp(UChar32 c) { return u_isdigit(c) != 0; }
bool IsAlphaCp(UChar32 c) { return u_isalpha(c) != 0; }
bool IsAlnumCp(UChar32 c) { return u_isalnum(c) != 0; }
bool IsSpaceCp(UChar32 c) { return IsPyWhitespace(static_cast<uint32_t>(c)); }

}  // namespace

absl::StatusOr<Value> CallStringMethod(const std::string& s, const std::string& name, const CallArgs& args,
                                       Budget& budget) {
  RETURN_IF_ERROR(budget.ChargeBytes(s.size()));  // every method reads the string at most once
  if (name == "startswith" || name == "endswith") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"prefix"}));
    ASSIGN_OR_RETURN(bool hit, PrefixTest(s, a[0], name == "endswith", budget));
    return Value(hit);
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"chars"}));
    ASSIGN_OR_RETURN(std::string r, Strip(s, a[0], name != "rstrip", name != "lstrip"));
    return Value(std::move(r));
  }
  if (name == "split" || name == "rsplit") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"sep", "maxsplit"}));
    ASSIGN_OR_RETURN(List parts, Split(s, a[0], a[1], name == "rsplit", budget));
    return Value(std::move(parts));
  }
  if (name == "replace") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"old", "new", "count"}));
    ASSIGN_OR_RETURN(std::string r, Replace(s, a[0], a[1], a[2], budget));
    return Value(std::move(r));
  }
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    // Case mapping can grow a string ('ß'.upper() == 'SS').
    std::string r = name == "upper" || name == "lower" ? CaseMap(s, name == "upper")
                    : name == "capitalize"             ? Capitalize(s)
                                                       : Title(s);
    RETURN_IF_ERROR(budget.ChargeBytes(r.size()));
    if (r.size() > budget.limits().max_output_bytes) {
      return TypeError(absl::StrCat(name, "(): result too large"));
    }
    return Value(std::move(r));
  }
  if (name == "find" || name == "rfind" || name == "count") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"sub"}));
    if (!a[0].is_string()) return TypeError(absl::StrCat(name, "() argument must be str"));
    const std::string& sub = a[0].as_string();
    if (name == "count") return Value(CountSubstr(s, sub));
    return Value(CharIndex(s, name == "find" ? s.find(sub) : s.rfind(sub)));
  }
  if (name == "join") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"iterable"}));
    ASSIGN_OR_RETURN(List items, Iterate(a[0], budget));
    for (const Value& v : items) {
      if (!v.is_string()) return TypeError("join(): sequence item is not a str");
    }
    ASSIGN_OR_RETURN(std::string r, Join(a[0], s, Value(), budget));
    return Value(std::move(r));
  }
  if (name == "splitlines") {
    List out;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\n' || s[i] == '\r') {
        RETURN_IF_ERROR(budget.Charge());
        out.emplace_back(s.substr(start, i - start));
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        start = i + 1;
      }
    }
    if (start < s.size()) out.emplace_back(s.substr(start));
    return Value(std::move(out));
  }
  if (name == "isdigit") return Value(AllChars(s, IsDigitCp));
  if (name == "isalpha") return Value(AllChars(s, IsAlphaCp));
  if (name == "isalnum") return Value(AllChars(s, IsAlnumCp));
  if (name == "isspace") return Value(AllChars(s, IsSpaceCp));
  return TypeError(absl::StrCat("'str' object has no attribute '", name, "'"));
}

bool IsStringMethod(std::string_view name) {
  static const auto* kSet = new absl::flat_hash_set<std::string_view>{
      "startswith", "endswith", "strip",      "lstrip",     "rstrip",  "split",   "rsplit",
      "replace",    "upper",    "lower",      "capitalize", "title",   "find",    "rfind",
      "count",      "join",     "splitlines", "isdigit",    "isalpha", "isalnum", "isspace"};
  return kSet->contains(name);
}

}  // namespace moeserve::jinja

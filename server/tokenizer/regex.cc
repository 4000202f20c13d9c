#include "server/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/tokenizer/unicode.h"

namespace moeserve {
namespace {

// Per-thread match data, grown on demand; patterns here have few groups.
struct MatchData {
  pcre2_match_data* data = nullptr;
  ~MatchData() {
    if (data != nullptr) pcre2_match_data_free(data);
  }
};

pcre2_match_data* ThreadMatchData() {
  thread_local MatchData md;
  if (md.data == nullptr) md.data = pcre2_match_data_create(32, nullptr);
  return md.data;
}

// Unicode White_Space, which Oniguruma (used by HF tokenizers) matches with \s. PCRE2's \s in UCP
// mode also matches U+180E (MONGOLIAN VOWEL SEPARATOR, no longer a space since Unicode 6.3).
constexpr char kWhiteSpaceSet[] =
    R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Rewrites \s and \S (outside character classes) and \s inside classes to kWhiteSpaceSet.
std::string RewriteWhitespaceClasses(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char n = pattern[i + 1];
      if (n == 's' && in_class) {
        out += kWhiteSpaceSet;
      } else if (n == 's') {
        out += absl::StrCat("[", kWhiteSpaceSet, "]");
      } else if (n == 'S' && !in_class) {
        out += absl::StrCat("[^", kWhiteSpaceSet, "]");
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view original) {
  const std::string pattern = RewriteWhitespaceClasses(original);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat("cannot compile regex \"", std::string(original), "\" at ", offset,
                                                   ": ", reinterpret_cast<const char*>(message)));
  }
  const bool jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return std::unique_ptr<Regex>(new Regex(code, jit));
}

absl::StatusOr<std::unique_ptr<Regex>> Regex::Literal(std::string_view literal) {
  std::string quoted = "\\Q";
  // \Q...\E cannot contain "\E"; split it out.
  for (size_t i = 0; i < literal.size(); ++i) {
    if (literal[i] == '\\' && i + 1 < literal.size() && literal[i + 1] == 'E') {
      quoted += "\\E\\\\\\Q";
    } else {
      quoted += literal[i];
    }
  }
  quoted += "\\E";
  return Compile(quoted);
}

// A `pattern` object of tokenizer.json: {"String": s} or {"Regex": r}.
absl::StatusOr<std::unique_ptr<Regex>> MakePattern(const nlohmann::json& pattern) {
  if (pattern.is_object() && pattern.contains("String")) {
    return Regex::Literal(pattern["String"].get<std::string>());
  }
  if (pattern.is_object() && pattern.contains("Regex")) {
    return Regex::Compile(pattern["Regex"].get<std::string>());
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported pattern: ", pattern.dump()));
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = ThreadMatchData();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), start, 0, md, nullptr)
                        : pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // no match (or a resource error: treat as no further matches)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      matches->emplace_back(b, e);
      start = e;
    } else {
      if (b >= text.size()) break;
      start = b + Utf8CharLength(text[b]);  // skip an empty match by one character
    }
  }
}

}  // namespace moeserve

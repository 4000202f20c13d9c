#include "server/serving/parsers/json_text.h"

#include "nlohmann/json.hpp"
#include "server/serving/parsers/text_scan.h"

namespace moeserve::parsers {
namespace {

// REQUIRES: text[pos] == '"' and the text is valid JSON. Returns the index after the closing quote.
size_t SkipString(std::string_view text, size_t pos) {
  for (++pos; pos < text.size(); ++pos) {
    if (text[pos] == '\\') {
      ++pos;  // the escaped character; \uXXXX continues with hex digits, which never end a string
    } else if (text[pos] == '"') {
      return pos + 1;
    }
  }
  return text.size();
}

// REQUIRES: text[pos] starts a value of a valid JSON text. Returns the index after that value.
size_t SkipValue(std::string_view text, size_t pos) {
  const char c = text[pos];
  if (c == '"') return SkipString(text, pos);
  if (c == '{' || c == '[') {
    int depth = 0;
    while (pos < text.size()) {
      const char d = text[pos];
      if (d == '"') {
        pos = SkipString(text, pos);
        continue;
      }
      if (d == '{' || d == '[') ++depth;
      if (d == '}' || d == ']') {
        if (--depth == 0) return pos + 1;
      }
      ++pos;
    }
    return pos;
  }
  // A number or a literal: runs to the next structural character or whitespace.
  while (pos < text.size() && text[pos] != ',' && text[pos] != '}' && text[pos] != ']' &&
         LeadingSpace(text.substr(pos, 1)) == 0) {
    ++pos;
  }
  return pos;
}

size_t SkipSpace(std::string_view text, size_t pos) { return pos + LeadingSpace(text.substr(pos)); }

}  // namespace

bool IsJsonValue(std::string_view text) {
  // accept() runs nlohmann's iterative SAX parser: no recursion, so deep nesting cannot overflow
  // the stack, and it reports rather than throws.
  return nlohmann::json::accept(text);
}

bool IsJsonObject(std::string_view text) {
  const std::string_view trimmed = TrimSpace(text);
  return !trimmed.empty() && trimmed.front() == '{' && IsJsonValue(trimmed);
}

std::optional<std::vector<JsonMember>> JsonObjectMembers(std::string_view text) {
  text = TrimSpace(text);
  if (!IsJsonObject(text)) return std::nullopt;
  std::vector<JsonMember> members;
  size_t pos = SkipSpace(text, 1);
  while (pos < text.size() && text[pos] != '}') {
    const size_t key_end = SkipString(text, pos);
    std::optional<std::string> key = JsonStringValue(text.substr(pos, key_end - pos));
    if (!key) return std::nullopt;                        // unreachable for valid JSON
    pos = SkipSpace(text, SkipSpace(text, key_end) + 1);  // past ':'
    const size_t value_end = SkipValue(text, pos);
    members.push_back(JsonMember{*std::move(key), text.substr(pos, value_end - pos)});
    pos = SkipSpace(text, value_end);
    if (pos < text.size() && text[pos] == ',') pos = SkipSpace(text, pos + 1);
  }
  return members;
}

std::optional<std::string> JsonStringValue(std::string_view literal) {
  if (literal.size() < 2 || literal.front() != '"') return std::nullopt;
  nlohmann::json value = nlohmann::json::parse(literal, nullptr, /*allow_exceptions=*/false);
  if (!value.is_string()) return std::nullopt;
  return value.get<std::string>();
}

}  // namespace moeserve::parsers

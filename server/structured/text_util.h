#ifndef MOESERVE_SERVER_STRUCTURED_TEXT_UTIL_H_
#define MOESERVE_SERVER_STRUCTURED_TEXT_UTIL_H_

// Small scanners shared by the text front ends (GBNF, regex, JSON Schema).

#include <algorithm>
#include <cstdint>
#include <string_view>

namespace moeserve::structured {

// The value of a hex digit, -1 for any other character.
inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads exactly `digits` hex digits at text[*pos] (an escape's \xHH, \uHHHH, \UHHHHHHHH),
// advancing *pos past them. False, with *pos at the first non-digit, when fewer are there.
inline bool ParseHexDigits(std::string_view text, size_t* pos, int digits, uint32_t* value) {
  uint32_t v = 0;
  for (int i = 0; i < digits; ++i) {
    const int h = *pos < text.size() ? HexValue(text[*pos]) : -1;
    if (h < 0) return false;
    v = v * 16 + static_cast<uint32_t>(h);
    ++*pos;
  }
  *value = v;
  return true;
}

// Reads decimal digits at text[*pos], advancing *pos; the value saturates at cap + 1 so that a
// caller can report "above cap". False (nothing read) when there is no digit.
inline bool ParseCount(std::string_view text, size_t* pos, int64_t cap, int64_t* value) {
  const size_t start = *pos;
  int64_t v = 0;
  while (*pos < text.size() && text[*pos] >= '0' && text[*pos] <= '9') {
    v = std::min<int64_t>(v * 10 + (text[*pos] - '0'), cap + 1);
    ++*pos;
  }
  if (*pos == start) return false;
  *value = v;
  return true;
}

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_TEXT_UTIL_H_

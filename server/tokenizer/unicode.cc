#include "server/tokenizer/unicode.h"

namespace moeserve {
namespace {

// Length of the valid UTF-8 sequence at s[pos], or 0 when ill-formed; on ill-formed input
// `*bad_len` is the length of the maximal ill-formed subpart (at least 1).
size_t ValidSequenceLength(std::string_view s, size_t pos, size_t* bad_len, uint32_t* cp) {
  const size_t n = s.size();
  const uint8_t c0 = static_cast<uint8_t>(s[pos]);
  *bad_len = 1;
  if (c0 < 0x80) {
    *cp = c0;
    return 1;
  }
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    len = 2;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    len = 3;
    if (c0 == 0xE0) lo = 0xA0;
    if (c0 == 0xED) hi = 0x9F;
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    len = 4;
    if (c0 == 0xF0) lo = 0x90;
    if (c0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  uint32_t value = c0 & (0xFF >> (len + 1));
  for (size_t i = 1; i < len; ++i) {
    if (pos + i >= n) {
      *bad_len = i;
      return 0;
    }
    const uint8_t c = static_cast<uint8_t>(s[pos + i]);
    const uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (c < l || c > h) {
      *bad_len = i;
      return 0;
    }
    value = (value << 6) | (c & 0x3F);
  }
  *cp = value;
  return len;
}

}  // namespace

size_t FindInvalidUtf8(std::string_view s) {
  size_t pos = 0, bad = 0;
  uint32_t cp;
  while (pos < s.size()) {
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t len = ValidSequenceLength(s, pos, &bad, &cp);
    if (len == 0) return pos;
    pos += len;
  }
  return s.size();
}

bool IsValidUtf8(std::string_view s) { return FindInvalidUtf8(s) == s.size(); }

size_t CompleteUtf8Prefix(std::string_view s) {
  // Look back at most 3 bytes for the start of a sequence that runs past the end.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t c = static_cast<uint8_t>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    if (c < 0x80) return n;
    const size_t need = Utf8CharLength(static_cast<char>(c));
    if (need <= back) return n;
    // Incomplete only if what is there so far is a valid prefix.
    size_t bad = 0;
    uint32_t cp;
    ValidSequenceLength(s, n - back, &bad, &cp);
    return bad == back ? n - back : n;
  }
  return n;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t DecodeUtf8Char(std::string_view s, size_t* pos) {
  size_t bad = 0;
  uint32_t cp = 0;
  const size_t len = ValidSequenceLength(s, *pos, &bad, &cp);
  if (len == 0) {
    *pos += bad;
    return 0xFFFD;
  }
  *pos += len;
  return cp;
}

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t start = pos;
    const uint32_t cp = DecodeUtf8Char(bytes, &pos);
    if (cp == 0xFFFD && !(pos - start == 3 && bytes.substr(start, 3) == "\xEF\xBF\xBD")) {
      out += "\xEF\xBF\xBD";
    } else {
      out.append(bytes.substr(start, pos - start));
    }
  }
  return out;
}

}  // namespace moeserve

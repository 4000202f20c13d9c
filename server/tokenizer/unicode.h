#ifndef MOESERVE_SERVER_TOKENIZER_UNICODE_H_
#define MOESERVE_SERVER_TOKENIZER_UNICODE_H_

// Small UTF-8 helpers for the tokenizer. Unicode properties and normalization come from PCRE2 and
// ICU; this file only walks bytes.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moeserve {

// Length of the UTF-8 sequence that starts with `lead` (1 for a stray continuation/invalid byte).
inline size_t Utf8CharLength(char lead) {
  const uint8_t c = static_cast<uint8_t>(lead);
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  if ((c >> 3) == 0x1E) return 4;
  return 1;
}

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Byte offset of the first ill-formed sequence in `s`, or s.size() when it is valid.
size_t FindInvalidUtf8(std::string_view s);

// Length of the longest prefix of `s` made of complete, valid UTF-8 characters when `s` may end
// in the middle of one. Ill-formed bytes before the tail count as complete (one byte each).
size_t CompleteUtf8Prefix(std::string_view s);

// Appends the UTF-8 encoding of `cp` to `out`.
void AppendUtf8(uint32_t cp, std::string* out);

// Decodes the character at `s[*pos]` and advances `*pos`. Ill-formed bytes decode as U+FFFD,
// consuming the maximal ill-formed subpart (as Python's and Rust's lossy decoders do).
uint32_t DecodeUtf8Char(std::string_view s, size_t* pos);

// Converts arbitrary bytes to valid UTF-8, replacing each maximal ill-formed subpart with U+FFFD
// (Rust's String::from_utf8_lossy).
std::string Utf8Lossy(std::string_view bytes);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_UNICODE_H_

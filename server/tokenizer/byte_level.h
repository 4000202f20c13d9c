#ifndef MOESERVE_SERVER_TOKENIZER_BYTE_LEVEL_H_
#define MOESERVE_SERVER_TOKENIZER_BYTE_LEVEL_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace moeserve {

// GPT-2's reversible byte <-> printable character map used by byte-level BPE: printable Latin-1
// bytes map to themselves, the other 68 bytes to U+0100.. in order.

// The UTF-8 text of the character byte `b` maps to.
const std::string& ByteToUnicode(uint8_t b);

// Appends the mapped characters of every byte of `bytes` to `out`.
void AppendByteLevel(std::string_view bytes, std::string* out);

// Maps the characters of `text` back to bytes. Returns false (leaving `out` unspecified) when a
// character is outside the map.
bool ByteLevelToBytes(std::string_view text, std::string* out);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_BYTE_LEVEL_H_

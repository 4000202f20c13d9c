#include "server/tokenizer/byte_level.h"

#include <array>

#include "server/tokenizer/unicode.h"

namespace moeserve {
namespace {

struct Tables {
  std::array<std::string, 256> byte_to_text;
  std::array<int16_t, 0x144> cp_to_byte;  // code points used are all < U+0144
  Tables() {
    cp_to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = printable ? b : next++;
      AppendUtf8(cp, &byte_to_text[b]);
      cp_to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const Tables& GetTables() {
  static const Tables* tables = new Tables();
  return *tables;
}

}  // namespace

const std::string& ByteToUnicode(uint8_t b) { return GetTables().byte_to_text[b]; }

void AppendByteLevel(std::string_view bytes, std::string* out) {
  const Tables& t = GetTables();
  for (char c : bytes) out->append(t.byte_to_text[static_cast<uint8_t>(c)]);
}

bool ByteLevelToBytes(std::string_view text, std::string* out) {
  const Tables& t = GetTables();
  size_t pos = 0;
  while (pos < text.size()) {
    const uint32_t cp = DecodeUtf8Char(text, &pos);
    if (cp >= t.cp_to_byte.size() || t.cp_to_byte[cp] < 0) return false;
    out->push_back(static_cast<char>(t.cp_to_byte[cp]));
  }
  return true;
}

}  // namespace moeserve

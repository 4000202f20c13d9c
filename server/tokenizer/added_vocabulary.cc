#include "server/tokenizer/added_vocabulary.h"

#include <unicode/uchar.h>

#include "server/tokenizer/unicode.h"

namespace moeserve {
namespace {

// Last / first character of `s` (0 when empty).
uint32_t LastChar(std::string_view s) {
  if (s.empty()) return 0;
  size_t start = s.size() - 1;
  while (start > 0 && (s[start] & 0xC0) == 0x80) --start;
  return DecodeUtf8Char(s, &start);
}
uint32_t FirstChar(std::string_view s) {
  size_t pos = 0;
  return s.empty() ? 0 : DecodeUtf8Char(s, &pos);
}

bool IsWordChar(uint32_t cp) { return cp != 0 && u_isalnum(static_cast<UChar32>(cp)); }
bool IsSpace(uint32_t cp) { return u_isUWhiteSpace(static_cast<UChar32>(cp)); }

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns)
    : tokens_(std::move(tokens)) {
  trie_.emplace_back();
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string& p = patterns[i];
    if (p.empty()) continue;
    first_byte_[static_cast<uint8_t>(p[0])] = true;
    int32_t node = 0;
    for (char c : p) {
      auto it = trie_[node].next.find(static_cast<uint8_t>(c));
      if (it == trie_[node].next.end()) {
        trie_.emplace_back();
        const int32_t child = static_cast<int32_t>(trie_.size()) - 1;
        trie_[node].next[static_cast<uint8_t>(c)] = child;
        node = child;
      } else {
        node = it->second;
      }
    }
    if (trie_[node].token < 0) trie_[node].token = static_cast<int32_t>(i);
  }
}

int32_t AddedTokenMatcher::LongestAt(std::string_view text, size_t pos, size_t* len) const {
  int32_t node = 0, best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    auto it = trie_[node].next.find(static_cast<uint8_t>(text[i]));
    if (it == trie_[node].next.end()) break;
    node = it->second;
    if (trie_[node].token >= 0) {
      best = trie_[node].token;
      *len = i + 1 - pos;
    }
  }
  return best;
}

void AddedTokenMatcher::Split(std::string_view text, std::vector<Segment>* out) const {
  size_t done = 0;  // text before this offset is already in `out`
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t len = 0;
    const int32_t index = LongestAt(text, pos, &len);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t start = pos, stop = pos + len;
    if (token.single_word &&
        (IsWordChar(LastChar(text.substr(0, start))) || IsWordChar(FirstChar(text.substr(stop))))) {
      pos = stop;  // the match is consumed but not used, as in HF's find_iter loop
      continue;
    }
    if (token.lstrip) {
      while (start > done) {
        size_t prev = start - 1;
        while (prev > done && (text[prev] & 0xC0) == 0x80) --prev;
        size_t p = prev;
        if (!IsSpace(DecodeUtf8Char(text, &p))) break;
        start = prev;
      }
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t p = stop;
        if (!IsSpace(DecodeUtf8Char(text, &p))) break;
        stop = p;
      }
    }
    if (start > done) out->push_back({done, start, -1});
    out->push_back({start, stop, token.id});
    done = pos = stop;
  }
  if (done < text.size()) out->push_back({done, text.size(), -1});
}

}  // namespace moeserve

#ifndef MOESERVE_SERVER_TOKENIZER_ADDED_VOCABULARY_H_
#define MOESERVE_SERVER_TOKENIZER_ADDED_VOCABULARY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace moeserve {

// An entry of tokenizer.json's `added_tokens`.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A piece of input: either text still to tokenize, or a matched added token.
struct Segment {
  size_t begin = 0, end = 0;  // byte range in the string that was split
  int32_t token_id = -1;      // >= 0 for an added token
};

// Finds added tokens in text, leftmost-longest (as HF's Aho-Corasick matcher), honouring lstrip,
// rstrip and single_word. Holds one pattern set; the tokenizer uses one for tokens matched on the
// raw input (normalized: false) and one for tokens matched after normalization. Immutable after
// construction; safe for concurrent use.
class AddedTokenMatcher {
 public:
  // `patterns[i]` is the text matched for `tokens[i]` (its content, normalized when it applies).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);

  bool empty() const { return tokens_.empty(); }
  // Appends the segments of `text` (covering it in order) to `out`.
  void Split(std::string_view text, std::vector<Segment>* out) const;

 private:
  // Index of the longest pattern starting at text[pos], or -1; sets *len.
  int32_t LongestAt(std::string_view text, size_t pos, size_t* len) const;

  struct Node {
    absl::flat_hash_map<uint8_t, int32_t> next;
    int32_t token = -1;  // index into tokens_
  };
  std::vector<AddedToken> tokens_;
  std::vector<Node> trie_;
  bool first_byte_[256] = {};
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_ADDED_VOCABULARY_H_

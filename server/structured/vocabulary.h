#ifndef MOESERVE_SERVER_STRUCTURED_VOCABULARY_H_
#define MOESERVE_SERVER_STRUCTURED_VOCABULARY_H_

// TokenVocabulary: what token masks need of a tokenizer, built once per tokenizer and shared by
// every compiled constraint: each token's bytes, the ids that end generation, the tokens sorted by
// bytes and a trie over them (preorder, so that a subtree is a contiguous range of nodes and of
// sorted tokens).
//
// Special tokens and tokens without bytes are never matched by a grammar. Stop ids (EOS) are
// allowed exactly where the grammar accepts the whole output.
//
// Immutable after creation; safe for concurrent use.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moeserve {
class Tokenizer;
}

namespace moeserve::structured {

class TokenVocabulary {
 public:
  struct Options {
    // Bits per mask: the model's logits width. 0: the number of tokens. Ids at or above the
    // tokenizer's size (padding rows) are never allowed.
    int32_t mask_size = 0;
    std::vector<int32_t> stop_ids;  // e.g. the model's EOS ids
  };

  // token_bytes[id]: what the token adds to the text; nullopt for tokens never matched (special).
  static absl::StatusOr<std::shared_ptr<const TokenVocabulary>> Create(
      std::vector<std::optional<std::string>> token_bytes, Options options);
  // Special tokens of `tokenizer` (and unknown ids) are never matched.
  static absl::StatusOr<std::shared_ptr<const TokenVocabulary>> FromTokenizer(const Tokenizer& tokenizer,
                                                                              Options options);

  struct TrieNode {
    int32_t depth = 0;         // bytes from the root
    int32_t end = 0;           // preorder index past this subtree
    int32_t tokens_begin = 0;  // sorted positions of the tokens ending here: [tokens_begin, tokens_end)
    int32_t tokens_end = 0;
    int32_t subtree_end = 0;  // sorted position past the tokens of this subtree
    uint8_t byte = 0;         // the edge from the parent
  };

  int32_t mask_size() const { return mask_size_; }
  int32_t mask_words() const { return (mask_size_ + 31) / 32; }
  absl::Span<const int32_t> stop_ids() const { return stop_ids_; }
  // Bytes of a matchable token, nullptr otherwise.
  const std::string* bytes(int32_t id) const;

  int32_t num_sorted() const { return static_cast<int32_t>(sorted_.size()); }
  int32_t sorted_id(int32_t position) const { return sorted_[position]; }
  std::string_view sorted_bytes(int32_t position) const { return *bytes(sorted_[position]); }
  // Node 0 is the root (the empty prefix).
  absl::Span<const TrieNode> trie() const { return trie_; }
  int32_t max_token_bytes() const { return max_token_bytes_; }
  size_t MemoryBytes() const;

 private:
  TokenVocabulary() = default;

  int32_t mask_size_ = 0;
  std::vector<int32_t> stop_ids_;
  std::vector<std::optional<std::string>> bytes_;
  std::vector<int32_t> sorted_;
  std::vector<TrieNode> trie_;
  int32_t max_token_bytes_ = 0;
};

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_VOCABULARY_H_

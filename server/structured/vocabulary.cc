#include "server/structured/vocabulary.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve::structured {

absl::StatusOr<std::shared_ptr<const TokenVocabulary>> TokenVocabulary::Create(
    std::vector<std::optional<std::string>> token_bytes, Options options) {
  const int32_t n = static_cast<int32_t>(token_bytes.size());
  if (options.mask_size == 0) options.mask_size = n;
  if (options.mask_size < n) {
    return absl::InvalidArgumentError(
        absl::StrCat("token masks of ", options.mask_size, " bits cannot cover ", n, " tokens"));
  }
  for (int32_t id : options.stop_ids) {
    if (id < 0 || id >= options.mask_size) {
      return absl::InvalidArgumentError(absl::StrCat("stop id ", id, " is outside the mask"));
    }
  }
  std::shared_ptr<TokenVocabulary> v(new TokenVocabulary());
  v->mask_size_ = options.mask_size;
  v->stop_ids_ = std::move(options.stop_ids);
  std::sort(v->stop_ids_.begin(), v->stop_ids_.end());
  v->stop_ids_.erase(std::unique(v->stop_ids_.begin(), v->stop_ids_.end()), v->stop_ids_.end());
  v->bytes_ = std::move(token_bytes);
  // Stop ids are matched only as terminators, never by their text.
  for (int32_t id : v->stop_ids_) {
    if (id < n) v->bytes_[id].reset();
  }
  for (int32_t id = 0; id < n; ++id) {
    if (v->bytes_[id].has_value() && !v->bytes_[id]->empty()) v->sorted_.push_back(id);
  }
  std::sort(v->sorted_.begin(), v->sorted_.end(), [&](int32_t a, int32_t b) {
    const std::string &x = *v->bytes_[a], &y = *v->bytes_[b];
    return x != y ? x < y : a < b;
  });
  // The trie, built in preorder from the sorted strings.
  std::vector<TrieNode>& trie = v->trie_;
  trie.push_back(TrieNode{});
  std::vector<int32_t> path{0};
  auto close = [&](int32_t node, int32_t sorted_end) {
    trie[node].end = static_cast<int32_t>(trie.size());
    trie[node].subtree_end = sorted_end;
  };
  std::string_view prev;
  const int32_t count = static_cast<int32_t>(v->sorted_.size());
  for (int32_t i = 0; i < count; ++i) {
    const std::string_view s = *v->bytes_[v->sorted_[i]];
    v->max_token_bytes_ = std::max(v->max_token_bytes_, static_cast<int32_t>(s.size()));
    size_t lcp = 0;
    while (lcp < prev.size() && lcp < s.size() && prev[lcp] == s[lcp]) ++lcp;
    while (trie[path.back()].depth > static_cast<int32_t>(lcp)) {
      close(path.back(), i);
      path.pop_back();
    }
    for (size_t d = lcp; d < s.size(); ++d) {
      TrieNode node;
      node.depth = static_cast<int32_t>(d) + 1;
      node.byte = static_cast<uint8_t>(s[d]);
      node.tokens_begin = node.tokens_end = i;
      trie.push_back(node);
      path.push_back(static_cast<int32_t>(trie.size()) - 1);
    }
    trie[path.back()].tokens_end = i + 1;
    prev = s;
  }
  while (!path.empty()) {
    close(path.back(), count);
    path.pop_back();
  }
  return std::shared_ptr<const TokenVocabulary>(std::move(v));
}

absl::StatusOr<std::shared_ptr<const TokenVocabulary>> TokenVocabulary::FromTokenizer(const Tokenizer& tokenizer,
                                                                                      Options options) {
  std::vector<std::optional<std::string>> bytes(tokenizer.vocab_size());
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    if (!tokenizer.IsSpecial(id)) bytes[id] = tokenizer.TokenBytes(id);
  }
  return Create(std::move(bytes), std::move(options));
}

const std::string* TokenVocabulary::bytes(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(bytes_.size()) || !bytes_[id].has_value()) return nullptr;
  return &*bytes_[id];
}

size_t TokenVocabulary::MemoryBytes() const {
  size_t total = sizeof(*this) + sorted_.size() * 4 + trie_.size() * sizeof(TrieNode);
  for (const auto& b : bytes_) total += sizeof(b) + (b.has_value() ? b->capacity() : 0);
  return total;
}

}  // namespace moeserve::structured

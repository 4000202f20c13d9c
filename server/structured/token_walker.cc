#include "server/structured/token_walker.h"

namespace moeserve::structured {

TokenWalker::TokenWalker(const Pda* pda, const TokenVocabulary* vocab)
    : pda_(pda), vocab_(vocab), stepper_(pda), levels_(vocab->max_token_bytes() + 2) {}

bool TokenWalker::Step(int32_t depth, uint8_t byte, StackArena* arena, bool* escaped) {
  const std::vector<Stack>& in = levels_[depth - 1];
  std::vector<Stack>& out = levels_[depth];
  // Fast path: one stack whose next state needs no closure.
  if (in.size() == 1) {
    const int32_t t = pda_->Next(in[0].state, byte);
    if (t < 0) {
      out.clear();
      return false;
    }
    if (pda_->simple(t)) {
      out.assign(1, Stack{t, in[0].parent});
      return true;
    }
  }
  PdaStepper::Flags flags;
  const bool read = stepper_.Advance(in, byte, arena, &out, &flags);
  *escaped = flags.escaped;
  return read;
}

void TokenWalker::WalkTrie(Stack start, StackArena* arena, TrieResult* result) {
  result->accepted.clear();
  result->escaped.clear();
  const absl::Span<const TokenVocabulary::TrieNode> trie = vocab_->trie();
  levels_[0].assign(1, start);
  const int32_t n = static_cast<int32_t>(trie.size());
  int32_t i = 1;
  while (i < n) {
    const TokenVocabulary::TrieNode& node = trie[i];
    bool escaped = false;
    if (!Step(node.depth, node.byte, arena, &escaped)) {
      i = node.end;
      continue;
    }
    if (node.tokens_end > node.tokens_begin) {
      if (!result->accepted.empty() && result->accepted.back().second == node.tokens_begin) {
        result->accepted.back().second = node.tokens_end;
      } else {
        result->accepted.emplace_back(node.tokens_begin, node.tokens_end);
      }
    }
    if (escaped && node.tokens_end < node.subtree_end) {
      result->escaped.emplace_back(node.tokens_end, node.subtree_end);
    }
    i = levels_[node.depth].empty() ? node.end : i + 1;
  }
}

}  // namespace moeserve::structured

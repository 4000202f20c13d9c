#include "server/structured/token_walker.h"

namespace moeserve::structured {

TokenWalker::TokenWalker(const Pda* pda, const TokenVocabulary* vocab)
    : pda_(pda), vocab_(vocab), stepper_(pda), levels_(vocab->max_token_bytes() + 2) {}

void TokenWalker::SetLevel(int32_t depth, absl::Span<const Stack> stacks) {
  Level& level = levels_[depth];
  level.single = stacks.size() == 1;
  if (level.single) {
    level.one = stacks[0];
  } else {
    level.many.assign(stacks.begin(), stacks.end());
  }
}

bool TokenWalker::SlowStep(const Level& in, Level* out, uint8_t byte, StackArena* arena, bool* escaped) {
  PdaStepper::Flags flags;
  const bool read = stepper_.Advance(in.stacks(), byte, arena, &out->many, &flags);
  *escaped = flags.escaped;
  out->single = out->many.size() == 1;
  if (out->single) out->one = out->many[0];
  return read;
}

void TokenWalker::WalkTrie(Stack start, StackArena* arena, TrieResult* result) {
  result->accepted.clear();
  result->escaped.clear();
  const absl::Span<const TokenVocabulary::TrieNode> trie = vocab_->trie();
  SetLevel(0, absl::MakeConstSpan(&start, 1));
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

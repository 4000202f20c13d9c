#ifndef MOESERVE_SERVER_STRUCTURED_TOKEN_WALKER_H_
#define MOESERVE_SERVER_STRUCTURED_TOKEN_WALKER_H_

// TokenWalker: runs many tokens through a Pda from one configuration, sharing the work of common
// prefixes. Two walks:
//   - WalkTrie: every token of the vocabulary, by a depth-first walk of the vocabulary trie that
//     skips a subtree as soon as no stack can read its next byte (the mask precomputation);
//   - WalkSorted: a given list of tokens in sorted order, reusing the configuration of the longest
//     common prefix with the previous token (the uncertain tokens, at precomputation and at run
//     time).
// A token is accepted when some stack reads all of its bytes. From a start set whose frames
// bottom out in kOpen, a token that no stack reads to the end but that some stack carried past the
// end of a kOpen-parented frame with bytes left is uncertain: it depends on the unknown context.
//
// Not thread safe: owns scratch; one per thread.

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "server/structured/pda.h"
#include "server/structured/stack_arena.h"
#include "server/structured/vocabulary.h"

namespace moeserve::structured {

enum class TokenVerdict : uint8_t { kRejected, kUncertain, kAccepted };

class TokenWalker {
 public:
  TokenWalker(const Pda* pda, const TokenVocabulary* vocab);

  // Sorted positions, as [begin, end) ranges in increasing order.
  struct TrieResult {
    std::vector<std::pair<int32_t, int32_t>> accepted;
    std::vector<std::pair<int32_t, int32_t>> escaped;  // may overlap `accepted` and each other
  };
  // Walks the whole vocabulary from the single stack {state, parent}; only `state`'s own byte
  // edges read the first byte (the closure of the start is the caller's business).
  void WalkTrie(Stack start, StackArena* arena, TrieResult* result);

  // Calls on_verdict(position, verdict) for each sorted position of `positions` (increasing),
  // starting every token from the stacks of `start` (their own byte edges read the first byte).
  // Positions for which skip(position) is true are not walked (no verdict).
  template <typename Skip, typename OnVerdict>
  void WalkSorted(absl::Span<const Stack> start, absl::Span<const int32_t> positions, StackArena* arena,
                  const Skip& skip, const OnVerdict& on_verdict);

 private:
  // The configuration after some bytes: one stack (the common case, no vector) or a set.
  struct Level {
    bool single = true;
    Stack one;
    std::vector<Stack> many;
    bool empty() const { return !single && many.empty(); }
    absl::Span<const Stack> stacks() const { return single ? absl::MakeConstSpan(&one, 1) : absl::MakeConstSpan(many); }
  };
  void SetLevel(int32_t depth, absl::Span<const Stack> stacks);
  // Reads byte into level `depth` from level depth - 1; returns whether some stack read it.
  bool Step(int32_t depth, uint8_t byte, StackArena* arena, bool* escaped) {
    const Level& in = levels_[depth - 1];
    Level& out = levels_[depth];
    if (in.single) {
      const int32_t t = pda_->Next(in.one.state, byte);
      if (t < 0) return false;
      if (pda_->simple(t)) {
        out.single = true;
        out.one = Stack{t, in.one.parent};
        return true;
      }
    }
    return SlowStep(in, &out, byte, arena, escaped);
  }
  bool SlowStep(const Level& in, Level* out, uint8_t byte, StackArena* arena, bool* escaped);

  const Pda* pda_;
  const TokenVocabulary* vocab_;
  PdaStepper stepper_;
  std::vector<Level> levels_;  // configuration after each depth
  std::vector<uint8_t> escaped_;
};

template <typename Skip, typename OnVerdict>
void TokenWalker::WalkSorted(absl::Span<const Stack> start, absl::Span<const int32_t> positions, StackArena* arena,
                             const Skip& skip, const OnVerdict& on_verdict) {
  SetLevel(0, start);
  // escaped_[k]: some stack escaped after reading byte j <= k of the current prefix.
  std::vector<uint8_t>& escaped = escaped_;
  escaped.assign(levels_.size(), 0);
  std::string_view prev;
  int32_t valid = 0;  // levels_[0..valid] hold the configurations of prev's prefix
  for (int32_t p : positions) {
    if (skip(p)) continue;
    const std::string_view s = vocab_->sorted_bytes(p);
    int32_t lcp = 0;
    const int32_t limit = std::min<int32_t>(valid, static_cast<int32_t>(std::min(prev.size(), s.size())));
    while (lcp < limit && prev[lcp] == s[lcp]) ++lcp;
    int32_t depth = lcp;
    const int32_t len = static_cast<int32_t>(s.size());
    TokenVerdict verdict = TokenVerdict::kAccepted;
    while (depth < len) {
      if (depth > 0 && levels_[depth].empty()) {  // nothing can read on
        verdict = escaped[depth] ? TokenVerdict::kUncertain : TokenVerdict::kRejected;
        break;
      }
      bool esc = false;
      if (!Step(depth + 1, static_cast<uint8_t>(s[depth]), arena, &esc)) {
        verdict = depth > 0 && escaped[depth] ? TokenVerdict::kUncertain : TokenVerdict::kRejected;
        break;
      }
      ++depth;
      escaped[depth] = escaped[depth - 1] || esc;
    }
    valid = depth;
    prev = s;
    on_verdict(p, verdict);
  }
}

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_TOKEN_WALKER_H_

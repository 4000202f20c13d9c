#ifndef MOESERVE_SERVER_STRUCTURED_TOKEN_MASK_CACHE_H_
#define MOESERVE_SERVER_STRUCTURED_TOKEN_MASK_CACHE_H_

// TokenMaskCache: the token masks of a Pda over one vocabulary, precomputed so that a step's mask
// costs a copy plus the few tokens the precomputation could not decide (the idea of xgrammar's
// adaptive token-mask cache, Dong et al. 2024).
//
// A matcher stack is keyed by its top state s and the state t of the frame below (its context;
// t = -1 at the bottom). Precomputation, per scanning state s, walks the vocabulary trie from s in
// an unknown context: a token is accepted when s's rule (and the rules it calls) reads all of its
// bytes, uncertain when it only fits by completing s's rule with bytes left over, rejected
// otherwise. For each context t that a call site gives s's rule, the uncertain tokens are walked
// again one frame deeper; what is still uncertain there (a token that also completes t's rule)
// is checked at run time from the real stack. Tokens that need the stack are rare (a JSON string
// value's `"}` closes two rules); most grammars inline into one DFA and need none.
//
// Stop ids are handled by the matcher (allowed where the grammar accepts), never here.
// Immutable after Build; safe for concurrent use.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/structured/fsm.h"
#include "server/structured/pda.h"
#include "server/structured/vocabulary.h"

namespace moeserve::structured {

// A set of token ids stored in whichever form is smallest.
class TokenSet {
 public:
  enum class Kind : uint8_t { kIds, kAllExcept, kBitset };

  // The tokens at the sorted positions of `ranges` ([begin, end), increasing, disjoint).
  static TokenSet FromSortedRanges(absl::Span<const std::pair<int32_t, int32_t>> ranges, const TokenVocabulary& vocab);

  Kind kind() const { return kind_; }
  // mask = this set (all mask_words words written).
  void Write(uint32_t* mask, int32_t mask_size) const;
  // mask |= this set; `scratch` holds mask_words words.
  void OrInto(uint32_t* mask, int32_t mask_size, uint32_t* scratch) const;
  size_t MemoryBytes() const { return ids_.capacity() * 4 + bits_.capacity() * 4; }

 private:
  Kind kind_ = Kind::kIds;
  std::vector<int32_t> ids_;  // kIds: members; kAllExcept: non-members
  std::vector<uint32_t> bits_;
};

class TokenMaskCache {
 public:
  struct Limits {
    // Bytes of uncertain tokens walked per context; beyond it, contexts fall back to the
    // state's context-free entry (correct, checked at run time).
    int64_t max_context_bytes = int64_t{64} << 20;
  };

  static absl::StatusOr<std::unique_ptr<TokenMaskCache>> Build(const Pda& pda, const TokenVocabulary& vocab,
                                                               CompileBudget* budget, const Limits& limits);

  struct View {
    const TokenSet* accepted = nullptr;
    absl::Span<const int32_t> extra;      // ids accepted on top of `accepted`
    absl::Span<const int32_t> uncertain;  // sorted positions to check from the real stack
  };
  // The masks of a stack with top `state` (which scans) over a frame in `context` (-1: bottom).
  View Lookup(int32_t state, int32_t context) const;

  size_t MemoryBytes() const;
  // Statistics for benchmarks: scanning states, distinct accepted sets, contexts walked, uncertain
  // tokens left in total.
  int64_t num_sets() const { return static_cast<int64_t>(sets_.size()); }
  int64_t num_states() const { return static_cast<int64_t>(states_.size()); }
  int64_t num_contexts() const { return static_cast<int64_t>(contexts_.size()); }
  int64_t num_uncertain() const;

 private:
  struct StateEntry {
    int32_t accepted = 0;            // index into sets_
    std::vector<int32_t> uncertain;  // sorted positions
  };
  struct ContextEntry {
    std::vector<int32_t> extra;
    std::vector<int32_t> uncertain;
  };
  static uint64_t Key(int32_t state, int32_t context) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(state)) << 32) | static_cast<uint32_t>(context);
  }

  std::vector<int32_t> entry_of_state_;  // per Pda state: index into states_, -1 if it scans nothing
  std::vector<StateEntry> states_;
  std::vector<TokenSet> sets_;  // distinct accepted sets (many states share one)
  absl::flat_hash_map<uint64_t, ContextEntry> contexts_;
};

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_TOKEN_MASK_CACHE_H_

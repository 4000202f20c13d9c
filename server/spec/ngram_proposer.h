#ifndef MOESERVE_SERVER_SPEC_NGRAM_PROPOSER_H_
#define MOESERVE_SERVER_SPEC_NGRAM_PROPOSER_H_

// N-gram (prompt lookup) drafts for speculative decoding: when the last n tokens of a sequence
// occurred before in it (prompt or output), the tokens that followed that occurrence are proposed
// as the continuation. Needs no weights and works with any model; it pays off where the output
// repeats its context (editing, summarising with quotes, code refactoring).
//
// Match rule: among the earlier occurrences of the sequence's last n tokens, for every n in
// [min_n, max_n], the longest n wins, then the most recent occurrence; the drafts are the up to
// num_drafts tokens after it (fewer when the sequence ends sooner). One backward scan over the
// sequence: O(length * max_n) in the worst case, allocation-free.
//
// Thread-compatible: a plain value; Propose is const.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moeserve {

struct NgramOptions {
  int32_t min_n = 1;  // --ngram-min
  int32_t max_n = 4;  // --ngram-max
};

class NgramProposer {
 public:
  // InvalidArgument naming the flag unless 1 <= min_n <= max_n <= kMaxN.
  static absl::StatusOr<NgramProposer> Create(const NgramOptions& options);
  static constexpr int32_t kMaxN = 64;

  // Appends up to `num_drafts` drafts for the sequence `tokens` to *drafts (cleared first);
  // returns how many (0 when no suffix of at least min_n tokens occurred before).
  int32_t Propose(absl::Span<const int32_t> tokens, int32_t num_drafts, std::vector<int32_t>* drafts) const;

  const NgramOptions& options() const { return options_; }

 private:
  explicit NgramProposer(const NgramOptions& options) : options_(options) {}

  NgramOptions options_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SPEC_NGRAM_PROPOSER_H_

#include "server/spec/ngram_proposer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace moeserve {

absl::StatusOr<NgramProposer> NgramProposer::Create(const NgramOptions& options) {
  if (options.min_n < 1 || options.min_n > kMaxN) {
    return absl::InvalidArgumentError(absl::StrCat("--ngram-min must be in [1, ", kMaxN, "], got ", options.min_n));
  }
  if (options.max_n < options.min_n || options.max_n > kMaxN) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ngram-max must be in [--ngram-min=", options.min_n, ", ", kMaxN, "], got ", options.max_n));
  }
  return NgramProposer(options);
}

int32_t NgramProposer::Propose(absl::Span<const int32_t> tokens, int32_t num_drafts,
                               std::vector<int32_t>* drafts) const {
  drafts->clear();
  const int64_t len = static_cast<int64_t>(tokens.size());
  if (num_drafts <= 0 || len < options_.min_n + 1) return 0;
  const int64_t max_n = std::min<int64_t>(options_.max_n, len - 1);
  // An occurrence ending at e (exclusive, e < len) matches the suffix over m tokens when
  // tokens[e - 1 - i] == tokens[len - 1 - i] for i < m. Scan e from the most recent down; a
  // strictly longer match replaces the best, so ties keep the most recent.
  int64_t best_end = -1;
  int64_t best_len = options_.min_n - 1;
  for (int64_t e = len - 1; e >= options_.min_n && best_len < max_n; --e) {
    const int64_t limit = std::min(max_n, e);
    int64_t m = 0;
    while (m < limit && tokens[e - 1 - m] == tokens[len - 1 - m]) ++m;
    if (m > best_len) {
      best_len = m;
      best_end = e;
    }
  }
  if (best_end < 0) return 0;
  const int64_t n = std::min<int64_t>(num_drafts, len - best_end);
  drafts->assign(tokens.begin() + best_end, tokens.begin() + best_end + n);
  return static_cast<int32_t>(n);
}

}  // namespace moeserve

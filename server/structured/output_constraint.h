#ifndef MOESERVE_SERVER_STRUCTURED_OUTPUT_CONSTRAINT_H_
#define MOESERVE_SERVER_STRUCTURED_OUTPUT_CONSTRAINT_H_

// OutputConstraintSpec: what the engine needs to constrain one request's output, prepared by the
// serving layer (server/serving/structured_output.h): the compiled grammar, the model's reasoning
// tokens and the request's own stop ids. Immutable; shared by the request's samples.
//
// OutputConstraint: one sample's position in it. Each step the engine asks for the masks of the
// sample's logits rows (FillMasks: one row, or 1 + k rows when k draft tokens are verified) and
// then advances by the tokens the step produced (Accept).
//
//   - Thinking models (<think> ... </think>, DeepSeek-R1, Qwen3): inside the reasoning block every
//     token is allowed; the grammar starts after </think>. The block is open from the start when
//     the prompt left it open (DeepSeek-R1's generation prompt), and the model may open it with its
//     first output token (Qwen3).
//   - Stop ids: the model's EOS ids (the vocabulary's stop ids) and the request's stop_token_ids are
//     allowed exactly where the output so far is complete; after one of them only stop ids are
//     allowed (a request that ignores EOS keeps emitting them until max_tokens).
//   - min_tokens is applied here, not by the sampler: while fewer than min_tokens tokens are out,
//     the stop ids (EOS unless ignore_eos, and the request's stop_token_ids) are cleared from a
//     mask that allows anything else; where the grammar allows nothing but the end, the grammar
//     wins and the stop ids stay allowed (the request ends early, finish reason "stop"; the engine
//     does not hold constrained requests to min_tokens). Never an invalid output, never a row
//     with nothing to sample.
//
// Requires external synchronization (one sample, one thread at a time).

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "server/structured/matcher.h"

namespace moeserve::structured {

// The ids of a thinking model's <think> and </think> tokens (both present, or neither).
struct ReasoningTokens {
  int32_t start = -1;
  int32_t end = -1;
  bool enabled() const { return start >= 0 && end >= 0; }
};

struct OutputConstraintSpec {
  std::shared_ptr<const CompiledGrammar> grammar;  // REQUIRED
  ReasoningTokens reasoning;
  bool starts_in_reasoning = false;     // the prompt left a reasoning block open
  std::vector<int32_t> stop_token_ids;  // the request's own (sorted, within the mask)
  int32_t min_tokens = 0;               // the request's (see above)
  bool ignore_eos = false;              // the request's: min_tokens leaves EOS alone
};

class OutputConstraint {
 public:
  // `max_drafts`: the most draft tokens FillMasks is given at once (0: no speculative decoding).
  OutputConstraint(std::shared_ptr<const OutputConstraintSpec> spec, int32_t max_drafts);

  OutputConstraint(const OutputConstraint&) = delete;
  OutputConstraint& operator=(const OutputConstraint&) = delete;

  int32_t mask_words() const { return spec_->grammar->vocab().mask_words(); }

  // Writes 1 + drafts.size() masks of mask_words() words each: mask j holds the tokens allowed
  // after the output so far followed by drafts[0, j). Bit (id % 32) of word (id / 32) set: id may
  // be sampled. A draft the constraint refuses cannot be accepted (its row's mask excludes it), so
  // the masks after it repeat the last one. The state is unchanged afterwards.
  // REQUIRES: drafts.size() <= max_drafts.
  void FillMasks(absl::Span<const int32_t> drafts, uint32_t* masks);

  // Advances by a generated token. Internal error (state unchanged) for a token the last mask
  // did not allow: a sampler that ignored the mask.
  absl::Status Accept(int32_t token);

  // The output so far is complete (a stop id may come next), or the grammar is not active yet.
  bool CanEnd() const;
  bool in_reasoning() const { return state_.in_reasoning; }

 private:
  struct State {
    bool in_reasoning = false;
    int64_t num_outputs = 0;
    int32_t matcher_tokens = 0;  // tokens the matcher accepted (for rollback)
  };
  bool IsStop(int32_t token) const;
  void FillMask(uint32_t* mask);
  void ApplyMinTokens(uint32_t* mask);  // see "min_tokens" above
  bool Advance(int32_t token);  // false (state unchanged) when `token` is not allowed

  const std::shared_ptr<const OutputConstraintSpec> spec_;
  const int32_t max_drafts_;
  GrammarMatcher matcher_;
  State state_;
  std::vector<int32_t> stops_;  // ApplyMinTokens' scratch
};

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_OUTPUT_CONSTRAINT_H_

#ifndef MOESERVE_SERVER_SAMPLING_SAMPLING_ROW_H_
#define MOESERVE_SERVER_SAMPLING_SAMPLING_ROW_H_

// SamplingRow: what sampling needs of one request at one step, the one type the engine hands the
// model runner (one per scheduled entry), the runner hands the host Sampler (with the row's
// logits), the draft verifier (rejection_sampler.h) and the device sampling path
// (device_sampling.h). A plain view: every span and pointer is the caller's and must stay valid
// while the row is used.

#include <cstdint>

#include "absl/types/span.h"
#include "server/sampling/sampling_params.h"

namespace moeserve {

struct SamplingRow {
  // [vocab_size] raw model output; set for the host Sampler only (the runner points it at the
  // copied logits; the device path reads the logits tensor).
  absl::Span<const float> logits;
  // Null for an entry that neither samples nor asks for prompt logprobs.
  const SamplingParams* params = nullptr;
  absl::Span<const int32_t> prompt_token_ids;
  absl::Span<const int32_t> output_token_ids;  // generated so far; its size is the draw counter
  uint64_t seed = 0;                           // Sampler::RequestSeed() of the request
  // Structured output: bit (id % 32) of word (id / 32) set when token id may be sampled; the
  // others get -inf before anything else (sampler.h, step 0). Null: every token.
  const uint32_t* allowed_tokens = nullptr;
  // Speculative decoding (rejection_sampler.h): the drafts d_1..d_k this step verifies, stored
  // right after output_token_ids (Request::output_and_draft_token_ids()). The row then covers
  // 1 + k positions: k + 1 logits rows and, when constrained, k + 1 masks of (vocab + 31) / 32
  // words (OutputConstraint::FillMasks), position j seeing the outputs followed by d_1..d_j.
  // Empty: one position, plain sampling.
  absl::Span<const int32_t> draft_token_ids;
  // Model runner: > 0: the logprobs of prompt positions p >= this one that the entry's chunk
  // predicts (rows p - 1 in [start, start + n), p < prompt length), with params->prompt_logprobs
  // alternatives. Needs params and prompt_token_ids also when the entry does not sample. 0: none.
  int32_t prompt_logprobs_from = 0;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SAMPLING_SAMPLING_ROW_H_

#ifndef MOESERVE_SERVER_SAMPLING_REJECTION_SAMPLER_H_
#define MOESERVE_SERVER_SAMPLING_REJECTION_SAMPLER_H_

// Verification of draft tokens (speculative decoding) so that the output has exactly the
// distribution of plain sampling (Leviathan et al. 2023, Chen et al. 2023).
//
// A step scores the request's last token followed by k drafts d_1..d_k, giving the target
// model's logits at k + 1 positions: row j predicts the token after d_1..d_j. Each row is turned
// into the request's processed distribution p_j exactly as the Sampler does without speculation
// (logit bias, min_tokens, penalties over the outputs followed by d_1..d_j, temperature, top-k,
// top-p, min-p), so every processor applies to each position as if the drafts were outputs.
//
// The drafters (n-gram lookup, MTP argmax) choose drafts deterministically: the draft
// distribution q_j is one-hot at d_j. Rejection sampling then accepts d_{j+1} with probability
// min(1, p_j(d_{j+1}) / q_j(d_{j+1})) = p_j(d_{j+1}) and on rejection samples from the residual
// norm(max(0, p_j - q_j)) = p_j conditioned on not d_{j+1}. Both are realised by one draw: sample
// x_j from p_j with the Sampler's own uniform for that output position, u = (seed, t + j); accept
// when x_j == d_{j+1}, else emit x_j and stop. P(accept) = p_j(d_{j+1}), and a rejected x_j is
// distributed as p_j without d_{j+1}: the rule above, with the same marginal as plain sampling.
// This coupling also makes the tokens identical to plain sampling with the same seed, draw for
// draw, so a seeded request gives the same output with or without speculation (given the same
// logits). When every draft is accepted, row k gives one more token (the bonus token). Greedy
// requests (temperature 0) accept while the target's argmax equals the draft.
//
// Logprobs of each emitted token are those of its row, as plain decoding reports them. A
// structured-output request's position j is masked with the grammar's mask after d_1..d_j, so a
// draft the grammar forbids is never accepted (its row cannot sample it).
// Thread-compatible: uses the Sampler's scratch (one engine thread).

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "server/sampling/sampler.h"
#include "server/sampling/sampling_params.h"
#include "server/sampling/sampling_row.h"

namespace moeserve {

// The tokens one request gets from a step: the accepted drafts, then the token sampled after
// them (just that token when it verified no drafts).
struct SampledTokens {
  absl::Status status;               // not OK: a row failed (NaN logits, ...); tokens then unspecified
  std::vector<SampleResult> tokens;  // 1 + num_accepted entries
  int32_t num_accepted = 0;
};

// Verifies row.draft_token_ids (sampling_row.h: k drafts, k + 1 logits rows and, when
// constrained, k + 1 masks): samples positions 0..k in order, stopping at the first whose token
// differs from the next draft. A row without drafts is plain sampling. A malformed row (logits
// not (k + 1) * vocab, drafts not right after the outputs) fails with InvalidArgument.
// REQUIRES: row.params passed Validate().
void VerifyDrafts(Sampler& sampler, const SamplingRow& row, SampledTokens* result);

// The same decision from tokens already sampled at every position (a device sampler samples all
// k + 1 rows at once, row j with the context of d_1..d_j): the number of leading positions whose
// token equals the next draft. REQUIRES: sampled.size() == drafts.size() + 1.
int32_t NumAcceptedDrafts(absl::Span<const int32_t> sampled, absl::Span<const int32_t> drafts);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SAMPLING_REJECTION_SAMPLER_H_

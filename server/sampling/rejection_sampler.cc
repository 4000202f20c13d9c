#include "server/sampling/rejection_sampler.h"

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace moeserve {

void VerifyDrafts(Sampler& sampler, const SamplingRow& row, SampledTokens* result) {
  const absl::Span<const int32_t> drafts = row.draft_token_ids;
  const size_t k = drafts.size();
  const size_t vocab = static_cast<size_t>(sampler.vocab_size());
  const size_t mask_words = (vocab + 31) / 32;
  result->num_accepted = 0;
  result->status = absl::OkStatus();
  const int32_t* const outputs_end = row.output_token_ids.data() + row.output_token_ids.size();
  if (row.logits.size() != (k + 1) * vocab || (k > 0 && drafts.data() != outputs_end)) {
    result->tokens.clear();
    result->status = absl::InvalidArgumentError(absl::StrCat(
        "draft verification: ", row.logits.size(), " logits for ", k, " drafts of a ", vocab, "-token vocabulary",
        k > 0 && drafts.data() != outputs_end ? ", drafts apart from the outputs" : ""));
    return;
  }
  // Keep the vectors' capacity (top_logprobs) across steps: resize, never clear.
  size_t n = 0;
  for (size_t j = 0; j <= k; ++j) {
    if (result->tokens.size() <= j) result->tokens.emplace_back();
    SampleResult& sample = result->tokens[j];
    SamplingRow position = row;
    position.logits = row.logits.subspan(j * vocab, vocab);
    position.output_token_ids = absl::MakeConstSpan(row.output_token_ids.data(), row.output_token_ids.size() + j);
    position.draft_token_ids = {};
    if (row.allowed_tokens != nullptr) position.allowed_tokens = row.allowed_tokens + j * mask_words;
    sampler.SampleRow(position, &sample);
    n = j + 1;
    if (!sample.status.ok()) {
      result->status = sample.status;
      break;
    }
    if (j == k || sample.token_id != drafts[j]) break;
    ++result->num_accepted;
  }
  result->tokens.resize(n);
}

int32_t NumAcceptedDrafts(absl::Span<const int32_t> sampled, absl::Span<const int32_t> drafts) {
  MS_CHECK(sampled.size() == drafts.size() + 1)
      << sampled.size() << " sampled tokens for " << drafts.size() << " drafts";
  int32_t n = 0;
  while (static_cast<size_t>(n) < drafts.size() && sampled[n] == drafts[n]) ++n;
  return n;
}

}  // namespace moeserve

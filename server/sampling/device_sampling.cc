#include "server/sampling/device_sampling.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace moeserve {

bool DeviceSamplingSupports(const SamplingRow& in, int32_t vocab_size) {
  if (in.params == nullptr) return false;
  // The device path does not suppress tokens for min_tokens (a masked row's is in its mask).
  if (in.allowed_tokens == nullptr && static_cast<int64_t>(in.output_token_ids.size()) < in.params->min_tokens) {
    return false;
  }
  for (absl::Span<const int32_t> ids : {in.prompt_token_ids, in.output_token_ids}) {
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab_size) return false;
    }
  }
  return true;
}

SamplingBatch BuildSamplingBatch(absl::Span<const SamplingRow> rows, int32_t vocab_size) {
  SamplingBatch batch;
  batch.rows.resize(rows.size());
  const int32_t mask_words = (vocab_size + 31) / 32;
  absl::flat_hash_map<int32_t, int32_t> index;  // id -> edit of the current row
  for (size_t r = 0; r < rows.size(); ++r) {
    const SamplingParams& p = *rows[r].params;
    SamplingRowSpec& s = batch.rows[r];
    s.logits_row = static_cast<int32_t>(r);
    s.greedy = p.temperature < kGreedyTemperature;
    s.temperature = p.temperature;
    s.top_k = p.top_k;
    s.top_p = p.top_p;
    s.min_p = p.min_p;
    s.repetition = p.repetition_penalty;
    s.presence = p.presence_penalty;
    s.frequency = p.frequency_penalty;
    s.seed = rows[r].seed;
    s.step = rows[r].output_token_ids.size();
    s.num_top_logprobs = p.logprobs.has_value() ? std::max(*p.logprobs, 0) : -1;
    if (rows[r].allowed_tokens != nullptr) {
      batch.mask_words = mask_words;
      s.mask_row = static_cast<int32_t>(batch.masks.size() / mask_words);
      batch.masks.insert(batch.masks.end(), rows[r].allowed_tokens, rows[r].allowed_tokens + mask_words);
    }
    s.edit_begin = static_cast<int32_t>(batch.edits.size());
    index.clear();
    auto edit = [&](int32_t id) -> SamplingEdit& {
      auto [it, inserted] = index.try_emplace(id, static_cast<int32_t>(batch.edits.size()));
      if (inserted) batch.edits.push_back(SamplingEdit{.id = id});
      return batch.edits[it->second];
    };
    for (const auto& [id, bias] : p.logit_bias) {
      if (id >= 0) edit(id).bias = bias;
    }
    if (p.repetition_penalty != 1.0f) {
      for (absl::Span<const int32_t> ids : {rows[r].prompt_token_ids, rows[r].output_token_ids}) {
        for (int32_t id : ids) edit(id).repetition = true;
      }
    }
    if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
      for (int32_t id : rows[r].output_token_ids) ++edit(id).count;
    }
    s.edit_end = static_cast<int32_t>(batch.edits.size());
  }
  return batch;
}

void ToSampleResults(absl::Span<const SampledToken> sampled, absl::Span<const SamplingRow> rows,
                     std::vector<SampleResult>* results) {
  results->resize(sampled.size());
  for (size_t r = 0; r < sampled.size(); ++r) {
    const SampledToken& t = sampled[r];
    SampleResult& out = (*results)[r];
    out = SampleResult();
    switch (t.status) {
      case 0: break;
      case 1: out.status = ModelLogitsFault(/*nan=*/true); break;
      case 2: out.status = ModelLogitsFault(/*nan=*/false); break;
      case 3: out.status = absl::InvalidArgumentError("every token is excluded (all logits are -inf)"); break;
      case 4: out.status = absl::InvalidArgumentError("no token has a nonzero probability"); break;
      case 5: out.status = absl::InvalidArgumentError("logits / temperature contain +inf"); break;
      default: out.status = absl::InvalidArgumentError("raw logits are not a distribution (logprobs)"); break;
    }
    if (!out.status.ok()) continue;
    out.token_id = t.token;
    if (rows[r].params->logprobs.has_value()) {
      out.logprob = t.logprob;
      for (const auto& [id, lp] : t.top) out.top_logprobs.push_back(TokenLogprob{id, lp});
    }
  }
}

absl::StatusOr<bool> SampleOnDevice(Backend* backend, const Tensor& logits, absl::Span<const SamplingRow> rows,
                                    std::vector<SampleResult>* results) {
  if (backend->name() == "cpu" || rows.empty() || logits.rank() != 2) return false;
  const int32_t vocab = static_cast<int32_t>(logits.dim(1));
  for (const SamplingRow& in : rows) {
    if (!DeviceSamplingSupports(in, vocab)) return false;
  }
  std::vector<SampledToken> sampled;
  const absl::Status s = backend->SampleTokens(logits, BuildSamplingBatch(rows, vocab), &sampled);
  if (absl::IsUnimplemented(s)) return false;
  RETURN_IF_ERROR(s);
  ToSampleResults(sampled, rows, results);
  return true;
}

}  // namespace moeserve

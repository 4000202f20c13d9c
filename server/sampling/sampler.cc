#include "server/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/sampling/philox.h"
#include "server/sampling/vec_math.h"

namespace moeserve {
namespace {

uint64_t EngineSeed(const std::optional<uint64_t>& seed) {
  if (seed.has_value()) return *seed;
  std::random_device device;
  return (uint64_t{device()} << 32) ^ device();
}

// The model's logits a row cannot be sampled from: NaN anywhere, or +inf (no distribution).
absl::Status CheckModelLogits(float max, bool has_nan) {
  if (has_nan || max == std::numeric_limits<float>::infinity()) return ModelLogitsFault(has_nan);
  return absl::OkStatus();
}

// After the temperature, +inf comes from a temperature so small that finite logits overflow.
absl::Status CheckScaledLogits(float max, bool has_nan) {
  if (has_nan) return absl::InvalidArgumentError("logits / temperature contain NaN");
  if (max == std::numeric_limits<float>::infinity()) {
    return absl::InvalidArgumentError("logits / temperature contain +inf");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ModelLogitsFault(bool nan) {
  return absl::InternalError(absl::StrCat("the model produced logits that contain ", nan ? "NaN" : "+inf",
                                          " (a numerical fault of the model or its weights)"));
}

Sampler::Sampler(SamplerOptions options)
    : options_(std::move(options)),
      seed_source_(EngineSeed(options_.engine_seed)),
      penalties_(options_.vocab_size),
      filter_(options_.vocab_size),
      scratch_(options_.vocab_size),
      weights_(options_.vocab_size) {}

uint64_t Sampler::RequestSeed(const SamplingParams& params) {
  return params.seed.has_value() ? *params.seed : seed_source_();
}

void Sampler::Sample(absl::Span<const SamplingRow> rows, std::vector<SampleResult>* results) {
  results->resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) SampleRow(rows[i], &(*results)[i]);
}

void Sampler::SampleRow(const SamplingRow& row, SampleResult* result) {
  result->token_id = -1;
  result->logprob = 0.0f;
  result->top_logprobs.clear();
  result->status = SampleRowImpl(row, result);
  if (!result->status.ok()) result->token_id = -1;
}

absl::Status Sampler::SampleRowImpl(const SamplingRow& row, SampleResult* result) {
  const int32_t vocab = options_.vocab_size;
  if (row.params == nullptr) return absl::InvalidArgumentError("sampler row has no params");
  if (static_cast<int64_t>(row.logits.size()) != vocab) {
    return absl::InvalidArgumentError(absl::StrCat("logits row has ", row.logits.size(), " entries, expected ", vocab));
  }
  const SamplingParams& p = *row.params;
  const absl::Span<float> s(scratch_);
  if (row.allowed_tokens != nullptr) {
    CopyAllowedLogits(row.logits, row.allowed_tokens, s);
  } else {
    std::copy(row.logits.begin(), row.logits.end(), s.begin());
  }

  ApplyLogitBias(p.logit_bias, s);
  // A masked row's min_tokens is in its mask (output_constraint.h: the grammar may have to end).
  if (row.allowed_tokens == nullptr && static_cast<int64_t>(row.output_token_ids.size()) < p.min_tokens) {
    SuppressTokens(p.stop_token_ids, s);
    if (!p.ignore_eos) SuppressTokens(options_.eos_token_ids, s);
  }
  if (absl::Status st = penalties_.Apply(p.repetition_penalty, p.presence_penalty, p.frequency_penalty,
                                         row.prompt_token_ids, row.output_token_ids, s);
      !st.ok()) {
    return st;
  }

  bool has_nan = false;
  float max = MaxValue(s, &has_nan);
  if (absl::Status st = CheckModelLogits(max, has_nan); !st.ok()) return st;
  if (max == -std::numeric_limits<float>::infinity()) {
    return absl::InvalidArgumentError("every token is excluded (all logits are -inf)");
  }

  int32_t token = -1;
  if (p.temperature < kGreedyTemperature) {
    for (int32_t i = 0; i < vocab; ++i) {
      if (s[i] == max) {
        token = i;
        break;
      }
    }
  } else {
    if (p.temperature != 1.0f) {
      DivideInPlace(s, p.temperature);
      max = MaxValue(s, &has_nan);
      if (absl::Status st = CheckScaledLogits(max, has_nan); !st.ok()) return st;
    }
    const absl::Span<float> w(weights_);
    filter_.Apply(s, max, p.top_k, p.top_p, p.min_p, w);
    token = SampleFromWeights(w, SamplingUniform(row.seed, row.output_token_ids.size()));
    if (token < 0) return absl::InvalidArgumentError("no token has a nonzero probability");
  }
  result->token_id = token;
  if (p.logprobs.has_value()) {
    return Logprobs(row.logits, token, *p.logprobs, &result->logprob, &result->top_logprobs);
  }
  return absl::OkStatus();
}

absl::Status Sampler::Logprobs(absl::Span<const float> logits, int32_t token_id, int32_t num_top, float* logprob,
                               std::vector<TokenLogprob>* top) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  if (vocab != options_.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("logits row has ", logits.size(), " entries, expected ", options_.vocab_size));
  }
  if (token_id < 0 || token_id >= vocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", token_id, " is outside the vocabulary [0, ", vocab, ")"));
  }
  bool has_nan = false;
  const float max = MaxValue(logits, &has_nan);
  if (absl::Status st = CheckModelLogits(max, has_nan); !st.ok()) return st;
  if (max == -std::numeric_limits<float>::infinity()) {
    return absl::InvalidArgumentError("all logits are -inf");
  }
  const absl::Span<float> w(weights_);
  ExpShifted(logits, max, w);
  const double log_z = static_cast<double>(max) + std::log(SumAsDouble(w));
  *logprob = static_cast<float>(logits[token_id] - log_z);

  top->clear();
  num_top = std::clamp(num_top, 0, vocab);
  if (num_top == 0) return absl::OkStatus();
  // A sorted window of the best num_top (value desc, id asc): scanning ids in ascending order, a
  // later token enters only when strictly larger than the current last.
  top->reserve(num_top);
  for (int32_t i = 0; i < vocab; ++i) {
    const float v = logits[i];
    if (static_cast<int32_t>(top->size()) == num_top && !(v > top->back().logprob)) continue;
    if (static_cast<int32_t>(top->size()) == num_top) top->pop_back();
    auto pos = std::upper_bound(top->begin(), top->end(), v,
                                [](float value, const TokenLogprob& e) { return value > e.logprob; });
    top->insert(pos, TokenLogprob{i, v});
  }
  for (TokenLogprob& e : *top) e.logprob = static_cast<float>(e.logprob - log_z);
  return absl::OkStatus();
}

}  // namespace moeserve

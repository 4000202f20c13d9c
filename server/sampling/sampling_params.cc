#include "server/sampling/sampling_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace moeserve {
namespace {

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

// NaN fails every comparison, so each range check is written to fail on NaN.
bool InClosed(float v, float lo, float hi) { return v >= lo && v <= hi; }

}  // namespace

absl::Status Validate(const SamplingParams& p, const SamplingLimits& limits) {
  const int32_t vocab = limits.vocab_size;
  if (vocab <= 0) return absl::InternalError(absl::StrCat("vocab_size must be > 0, got ", vocab));

  if (p.n < 1 || p.n > limits.max_n) {
    return Invalid(absl::StrCat("n must be in [1, ", limits.max_n, "] (max_num_samples), got ", p.n));
  }
  if (p.max_tokens < 1) return Invalid(absl::StrCat("max_tokens must be at least 1, got ", p.max_tokens));
  if (limits.max_model_len > 0) {
    const int64_t room = int64_t{limits.max_model_len} - limits.prompt_tokens;
    if (room < 1) {
      return Invalid(absl::StrCat("the prompt has ", limits.prompt_tokens,
                                  " tokens, leaving no room for output in the context of ", limits.max_model_len,
                                  " tokens"));
    }
    if (p.max_tokens > room) {
      return Invalid(absl::StrCat("max_tokens must be at most ", room, " (context ", limits.max_model_len, " - prompt ",
                                  limits.prompt_tokens, " tokens), got ", p.max_tokens));
    }
  }
  if (p.min_tokens < 0 || p.min_tokens > p.max_tokens) {
    return Invalid(absl::StrCat("min_tokens must be in [0, max_tokens=", p.max_tokens, "], got ", p.min_tokens));
  }
  if (!InClosed(p.temperature, 0.0f, kMaxTemperature)) {
    return Invalid(absl::StrCat("temperature must be in [0, ", kMaxTemperature, "], got ", p.temperature));
  }
  if (p.top_k < -1) {
    return Invalid(absl::StrCat("top_k must be 0 or -1 (disabled) or at least 1, got ", p.top_k));
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return Invalid(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  }
  if (!InClosed(p.min_p, 0.0f, 1.0f)) {
    return Invalid(absl::StrCat("min_p must be in [0, 1], got ", p.min_p));
  }
  if (!(p.repetition_penalty > 0.0f && p.repetition_penalty <= kMaxRepetitionPenalty)) {
    return Invalid(
        absl::StrCat("repetition_penalty must be in (0, ", kMaxRepetitionPenalty, "], got ", p.repetition_penalty));
  }
  constexpr float kPen = kMaxAbsPresenceOrFrequencyPenalty;
  if (!InClosed(p.presence_penalty, -kPen, kPen)) {
    return Invalid(absl::StrCat("presence_penalty must be in [-", kPen, ", ", kPen, "], got ", p.presence_penalty));
  }
  if (!InClosed(p.frequency_penalty, -kPen, kPen)) {
    return Invalid(absl::StrCat("frequency_penalty must be in [-", kPen, ", ", kPen, "], got ", p.frequency_penalty));
  }
  if (p.logit_bias.size() > static_cast<size_t>(kMaxLogitBiasEntries)) {
    return Invalid(
        absl::StrCat("logit_bias may have at most ", kMaxLogitBiasEntries, " entries, got ", p.logit_bias.size()));
  }
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0 || id >= vocab) {
      return Invalid(absl::StrCat("logit_bias token id ", id, " is outside the vocabulary [0, ", vocab, ")"));
    }
    if (!InClosed(bias, -kMaxAbsLogitBias, kMaxAbsLogitBias)) {
      return Invalid(absl::StrCat("logit_bias value for token ", id, " must be in [-", kMaxAbsLogitBias, ", ",
                                  kMaxAbsLogitBias, "], got ", bias));
    }
  }
  if (p.stop_token_ids.size() > static_cast<size_t>(kMaxStopTokenIds)) {
    return Invalid(
        absl::StrCat("stop_token_ids may have at most ", kMaxStopTokenIds, " entries, got ", p.stop_token_ids.size()));
  }
  for (int32_t id : p.stop_token_ids) {
    if (id < 0 || id >= vocab) {
      return Invalid(absl::StrCat("stop_token_ids token id ", id, " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  if (p.stop.size() > static_cast<size_t>(kMaxStopStrings)) {
    return Invalid(absl::StrCat("stop may have at most ", kMaxStopStrings, " strings, got ", p.stop.size()));
  }
  for (size_t i = 0; i < p.stop.size(); ++i) {
    if (p.stop[i].empty()) return Invalid(absl::StrCat("stop[", i, "] must not be empty"));
    if (p.stop[i].size() > static_cast<size_t>(kMaxStopStringBytes)) {
      return Invalid(
          absl::StrCat("stop[", i, "] must be at most ", kMaxStopStringBytes, " bytes, got ", p.stop[i].size()));
    }
  }
  if (p.logprobs.has_value() && (*p.logprobs < 0 || *p.logprobs > kMaxLogprobs)) {
    return Invalid(absl::StrCat("logprobs must be in [0, ", kMaxLogprobs, "], got ", *p.logprobs));
  }
  if (p.prompt_logprobs.has_value() && (*p.prompt_logprobs < 0 || *p.prompt_logprobs > kMaxLogprobs)) {
    return Invalid(absl::StrCat("prompt_logprobs must be in [0, ", kMaxLogprobs, "], got ", *p.prompt_logprobs));
  }
  return absl::OkStatus();
}

uint64_t SampleSeed(uint64_t request_seed, int32_t index) {
  if (index == 0) return request_seed;
  // SplitMix64 finalizer over (seed, index): distinct, well-mixed keys for the Philox generator.
  uint64_t x = request_seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(index);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

absl::Status Validate(const SamplingParams& params, int32_t vocab_size) {
  SamplingLimits limits;
  limits.vocab_size = vocab_size;
  return Validate(params, limits);
}

}  // namespace moeserve

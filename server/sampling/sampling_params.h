#ifndef MOESERVE_SERVER_SAMPLING_SAMPLING_PARAMS_H_
#define MOESERVE_SERVER_SAMPLING_SAMPLING_PARAMS_H_

// SamplingParams: what one request asks of the sampler and of the engine's stop checks, with the
// semantics of vLLM / the OpenAI API. A plain value type; Validate() is the only gate between a
// client and the sampler, which assumes validated params.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/structured/constraint.h"

namespace moeserve {

struct SamplingParams {
  int32_t n = 1;            // independent samples (completions) of the prompt, in [1, max_n]
  int32_t max_tokens = 16;  // output tokens, >= 1
  int32_t min_tokens = 0;   // stop/EOS ids are suppressed until this many outputs exist

  // 0 (anything below kGreedyTemperature) means greedy: argmax, ties to the lowest id.
  float temperature = 1.0f;
  int32_t top_k = 0;   // 0 or -1: off
  float top_p = 1.0f;  // (0, 1]; 1: off
  float min_p = 0.0f;  // [0, 1]; 0: off

  // HF/vLLM: over prompt + output tokens, positive logits are divided by it, others multiplied.
  float repetition_penalty = 1.0f;
  // OpenAI: over output tokens only; logit -= frequency_penalty * count + presence_penalty.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::map<int32_t, float> logit_bias;  // token id -> added to the logit, in [-100, 100]

  std::optional<uint64_t> seed;  // same seed and inputs -> same tokens, whatever the batch

  std::vector<int32_t> stop_token_ids;  // finish the request (after min_tokens)
  bool ignore_eos = false;              // EOS neither stops nor is suppressed by min_tokens
  std::vector<std::string> stop;        // stop strings, matched on the text by the serving layer

  // Log-probabilities of the raw model distribution (before any processing, like vLLM's default).
  // nullopt: none; 0: the sampled token's only; k: also the top k alternatives.
  std::optional<int32_t> logprobs;
  std::optional<int32_t> prompt_logprobs;  // same, per prompt position (computed by the engine)

  // Structured output: the output must match this (JSON Schema, regex, GBNF or any JSON object).
  // Compiled by the serving layer (server/structured/), which hands the engine the result
  // (EngineRequest::constraint); none by default.
  structured::Constraint constraint;
};

// Temperatures below this are greedy, as in vLLM (avoids overflow in logits / temperature).
inline constexpr float kGreedyTemperature = 1e-5f;

// Limits enforced by Validate().
inline constexpr float kMaxTemperature = 100.0f;
inline constexpr float kMaxRepetitionPenalty = 100.0f;
inline constexpr float kMaxAbsPresenceOrFrequencyPenalty = 2.0f;
inline constexpr float kMaxAbsLogitBias = 100.0f;
inline constexpr int32_t kMaxLogitBiasEntries = 1024;
inline constexpr int32_t kMaxStopTokenIds = 256;
inline constexpr int32_t kMaxStopStrings = 16;
inline constexpr int32_t kMaxStopStringBytes = 1024;
inline constexpr int32_t kMaxLogprobs = 20;
inline constexpr int32_t kDefaultMaxSamples = 16;  // SamplingLimits::max_n unless configured

// Context-dependent limits; zero fields are not checked.
struct SamplingLimits {
  int32_t vocab_size = 0;     // REQUIRED: > 0
  int32_t max_model_len = 0;  // when > 0: prompt_tokens + max_tokens must fit
  int32_t prompt_tokens = 0;
  int32_t max_n = kDefaultMaxSamples;  // n at most (the engine's max_num_samples)
};

// The generator key of sample `index` of a request seeded with `request_seed`: sample 0 uses the
// request seed itself (n = 1 is unchanged), the others a fixed mix of seed and index, so every
// sample of a seeded request is reproducible whatever its batch neighbours.
uint64_t SampleSeed(uint64_t request_seed, int32_t index);

// Returns OK or InvalidArgument naming the first offending field and its allowed range, e.g.
// "temperature must be in [0, 100], got -1".
absl::Status Validate(const SamplingParams& params, const SamplingLimits& limits);
absl::Status Validate(const SamplingParams& params, int32_t vocab_size);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SAMPLING_SAMPLING_PARAMS_H_

#ifndef MOESERVE_SERVER_SAMPLING_SAMPLER_H_
#define MOESERVE_SERVER_SAMPLING_SAMPLER_H_

// Sampler: host reference implementation turning one fp32 logits row per request into the next
// token. The GPU sampler must produce the same tokens; this header is its specification.
//
// Per row, in this order (s = a copy of the raw logits; the input is never modified):
//   0. allowed tokens    s[id] = -inf where the row's structured-output mask clears id
//   1. logit bias        s[id] += bias
//   2. min_tokens        while len(output) < min_tokens: s[id] = -inf for stop_token_ids and,
//                        unless ignore_eos, the model's EOS ids; not for a row with a mask (the
//                        structured-output constraint applies min_tokens in its mask)
//   3. penalties         repetition (prompt + output), then frequency and presence (output);
//                        exact fp32 formulas in logits_processors.h
//   4. greedy            temperature < kGreedyTemperature: argmax s, ties to the lowest id; done
//   5. temperature       x = s / temperature (IEEE fp32 division; skipped when temperature == 1)
//   6-8. top-k, top-p, min-p over x, as specified in token_filter.h (w = exp(x - max x))
//   9. draw              u = SamplingUniform(seed, len(output)) (philox.h); the token is the
//                        smallest id whose cumulative kept weight exceeds u * (total kept weight)
// Logprobs are those of the raw model distribution, log_softmax(raw logits), as vLLM returns by
// default: they describe what the model predicted, independent of the request's processing.
//
// Randomness: the draw for output position t of a request depends only on (seed, t). A seeded
// request therefore gets the same tokens whatever its batch neighbours or its row position, and
// a preempted request that recomputes resumes with the same draws. Unseeded requests get a seed
// from the engine-level source (RequestSeed) once, at admission.
//
// A row whose logits hold NaN or +inf, or that leaves no token to sample, fails alone (its
// result's status); the other rows are unaffected.
//
// Requires external synchronization (owns per-vocabulary scratch; one Sampler per engine thread).
// Allocates nothing per row after warm-up, except to grow a result's top_logprobs vector.

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "server/sampling/logits_processors.h"
#include "server/sampling/sampling_params.h"
#include "server/sampling/sampling_row.h"
#include "server/sampling/token_filter.h"

namespace moeserve {

// The status of a row whose model logits contain NaN (nan) or +inf: Internal, a fault of the
// model or its weights, never of the request (the engine's health counts these).
absl::Status ModelLogitsFault(bool nan);

struct SamplerOptions {
  int32_t vocab_size = 0;              // REQUIRED: > 0; every logits row has this many entries
  std::vector<int32_t> eos_token_ids;  // suppressed by min_tokens unless ignore_eos
  // Seeds the engine-level source of per-request seeds; nullopt: std::random_device.
  std::optional<uint64_t> engine_seed;
};

struct TokenLogprob {
  int32_t token_id = -1;
  float logprob = 0.0f;
  friend bool operator==(const TokenLogprob&, const TokenLogprob&) = default;
};

// Log-probabilities of one token under the raw model distribution: the token's own and the top
// alternatives, most likely first (a generated token's, or a prompt token's).
struct TokenLogprobs {
  int32_t token_id = -1;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;
};

struct SampleResult {
  absl::Status status;  // not OK: this row failed (fields below unspecified)
  int32_t token_id = -1;
  // Raw-model log-probability of token_id; set when params.logprobs has a value, else 0.
  float logprob = 0.0f;
  // The params.logprobs most likely tokens of the raw model distribution, most likely first,
  // ties to the lower id. Empty when params.logprobs is nullopt or 0.
  std::vector<TokenLogprob> top_logprobs;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions options);

  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  int32_t vocab_size() const { return options_.vocab_size; }

  // The generator key of a new request: params.seed when set, else a draw from the engine source.
  uint64_t RequestSeed(const SamplingParams& params);

  // Samples every row; results->size() becomes rows.size(). Reusing `results` across steps keeps
  // the top_logprobs vectors' capacity.
  // REQUIRES: each row's params passed Validate() against vocab_size().
  void Sample(absl::Span<const SamplingRow> rows, std::vector<SampleResult>* results);
  void SampleRow(const SamplingRow& row, SampleResult* result);

  // Raw-model logprob of `token_id` and the top `num_top` alternatives of one logits row (also for
  // prompt_logprobs). InvalidArgument for NaN/+inf logits or a bad token id.
  absl::Status Logprobs(absl::Span<const float> logits, int32_t token_id, int32_t num_top, float* logprob,
                        std::vector<TokenLogprob>* top);

 private:
  absl::Status SampleRowImpl(const SamplingRow& row, SampleResult* result);

  SamplerOptions options_;
  std::mt19937_64 seed_source_;
  Penalties penalties_;
  TokenFilter filter_;
  std::vector<float> scratch_;  // processed logits
  std::vector<float> weights_;  // exp weights
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SAMPLING_SAMPLER_H_

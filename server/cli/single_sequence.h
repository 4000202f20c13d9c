#ifndef MOESERVE_SERVER_CLI_SINGLE_SEQUENCE_H_
#define MOESERVE_SERVER_CLI_SINGLE_SEQUENCE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/backend/backend.h"
#include "server/model/model.h"
#include "server/sampling/sampling_params.h"

namespace moeserve {

struct SingleSequenceOptions {
  // max_tokens, sampling, seed and stop ids as for the engine; temperature 0 = greedy.
  SamplingParams sampling{.max_tokens = 128, .temperature = 0.0f, .seed = 0};
  std::vector<int32_t> eos_token_ids;  // end generation unless sampling.ignore_eos
  int32_t block_size = 16;
  // Called with every generated token, in order, before the next step runs.
  std::function<void(int32_t)> on_token;
};

// Generates one sequence with the model directly: prefill, then one decode step per token, over a
// private KV cache sized for prompt + max_tokens. The path of `moeserve generate` and of tests
// that need a model's raw continuation without the engine. Returns the generated ids (the stop
// token included when one ended generation). Samples with the engine's Sampler, so a seeded run
// gives the tokens the server would give.
// REQUIRES: prompt is non-empty.
absl::StatusOr<std::vector<int32_t>> GenerateSingleSequence(Model& model, Backend& backend,
                                                            absl::Span<const int32_t> prompt,
                                                            const SingleSequenceOptions& options);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_CLI_SINGLE_SEQUENCE_H_

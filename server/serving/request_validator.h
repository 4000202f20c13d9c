#ifndef MOESERVE_SERVER_SERVING_REQUEST_VALIDATOR_H_
#define MOESERVE_SERVER_SERVING_REQUEST_VALIDATOR_H_

// The one validation of a generation request, before it reaches the engine (which trusts it):
// the prompt's ids against the vocabulary and the context, the sampling parameters against the
// model's limits, and the per-request options. Errors are InvalidArgument (FailedPrecondition for
// what this model cannot do) naming the field as the client spelled it and its limit.
//
// Pure functions; safe from any thread.

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/serving/errors.h"
#include "server/serving/prompt_builder.h"
#include "server/serving/serving_request.h"
#include "server/serving/structured_output.h"

namespace moeserve {
class Engine;
}  // namespace moeserve

namespace moeserve::serving {

struct RequestLimits {
  int32_t vocab_size = 0;      // ids in [0, vocab_size)
  int32_t max_model_len = 0;   // the prompt plus max_tokens must fit
  int32_t max_n = 1;           // SamplingParams::n at most (max_num_samples)
  bool has_tokenizer = false;  // stop strings need one
};

RequestLimits LimitsOf(const Engine& engine);

// Non-empty, every id in the vocabulary, and room for one output token in the context.
absl::Status ValidatePromptIds(absl::Span<const int32_t> ids, const RequestLimits& limits, const std::string& field);

// Everything of `request` but its prompt, for a prompt of `prompt_tokens` tokens.
absl::Status ValidateRequest(const ServingRequest& request, int32_t prompt_tokens, const RequestLimits& limits);

// A request ready for the engine: its prompt ids and its compiled constraint (null: none).
struct PreparedRequest {
  BuiltPrompt prompt;
  std::shared_ptr<const structured::OutputConstraintSpec> constraint;
};

// Everything Frontend::Submit does before it queues `request`: builds the prompt, validates it
// and the request (setting sampling.max_tokens first when max_tokens_to_context), and compiles
// the constraint. Errors as Submit's, without Unavailable and ResourceExhausted.
absl::StatusOr<PreparedRequest> PrepareRequest(ServingRequest* request, const PromptBuilder& prompts,
                                               const RequestLimits& limits, StructuredOutput& structured);

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_REQUEST_VALIDATOR_H_

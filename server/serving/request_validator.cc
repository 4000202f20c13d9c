#include "server/serving/request_validator.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/engine/engine.h"

namespace moeserve::serving {

RequestLimits LimitsOf(const Engine& engine) {
  return {.vocab_size = engine.vocab_size(),
          .max_model_len = engine.max_model_len(),
          .max_n = engine.config().max_num_samples,
          .has_tokenizer = engine.tokenizer() != nullptr};
}

absl::Status ValidatePromptIds(absl::Span<const int32_t> ids, const RequestLimits& limits, const std::string& field) {
  if (ids.empty()) return InvalidField(field, " must not be empty");
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
      return InvalidField(absl::StrCat(field, "[", i, "]"),
                          absl::StrCat(" = ", ids[i], " is outside the vocabulary [0, ", limits.vocab_size, ")"));
    }
  }
  if (limits.max_model_len > 0 && static_cast<int64_t>(ids.size()) >= limits.max_model_len) {
    return InvalidField(field, absl::StrCat(": the prompt has ", ids.size(), " tokens; the context (max_model_len) is ",
                                            limits.max_model_len, " tokens and at least one output token must fit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const ServingRequest& request, int32_t prompt_tokens, const RequestLimits& limits) {
  if (request.cache_salt.size() > kMaxCacheSaltBytes) {
    return InvalidField(
        "cache_salt", absl::StrCat(" must be at most ", kMaxCacheSaltBytes, " bytes, got ", request.cache_salt.size()));
  }
  const SamplingParams& params = request.sampling;
  absl::Status s = Validate(params, {.vocab_size = limits.vocab_size,
                                     .max_model_len = limits.max_model_len,
                                     .prompt_tokens = prompt_tokens,
                                     .max_n = limits.max_n});
  if (!s.ok()) return NameSamplingError(s, request.names);
  if (!params.stop.empty() && !limits.has_tokenizer) {
    return FieldError(absl::StatusCode::kFailedPrecondition, request.names.Sampling("stop"),
                      ": stop strings need a tokenizer, and this model has none");
  }
  return absl::OkStatus();
}

absl::StatusOr<PreparedRequest> PrepareRequest(ServingRequest* request, const PromptBuilder& prompts,
                                               const RequestLimits& limits, StructuredOutput& structured) {
  PreparedRequest out;
  absl::StatusOr<BuiltPrompt> prompt =
      prompts.Build(request->prompt, request->names, {.cancelled = request->is_cancelled});
  if (!prompt.ok()) return prompt.status();
  out.prompt = *std::move(prompt);
  if (absl::Status s = ValidatePromptIds(out.prompt.ids, limits, request->names.prompt); !s.ok()) return s;
  const int32_t prompt_tokens = static_cast<int32_t>(out.prompt.ids.size());
  if (request->max_tokens_to_context) request->sampling.max_tokens = limits.max_model_len - prompt_tokens;
  if (absl::Status s = ValidateRequest(*request, prompt_tokens, limits); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<const structured::OutputConstraintSpec>> constraint =
      structured.Prepare(request->sampling, out.prompt.ids, request->names);
  if (!constraint.ok()) return constraint.status();
  out.constraint = *std::move(constraint);
  return out;
}

}  // namespace moeserve::serving

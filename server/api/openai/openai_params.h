#ifndef MOESERVE_SERVER_API_OPENAI_OPENAI_PARAMS_H_
#define MOESERVE_SERVER_API_OPENAI_OPENAI_PARAMS_H_

// Reading an OpenAI request body: typed fields with errors that name them, the parameters both
// generation endpoints share (sampling, stop, penalties, seed, vLLM's extras), and the refusal of
// every parameter the endpoint does not support (400 naming it; never silently ignored). A null
// value is the same as an absent field, as in OpenAI's SDKs.
// Pure functions; safe from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/sampling/sampling_params.h"
#include "server/serving/serving_request.h"

namespace moeserve::api::openai {

using Json = nlohmann::json;

// Parses a request body: a JSON object, or InvalidArgument.
absl::StatusOr<Json> ParseBody(const std::string& body);

// Field readers. Each returns nullopt when the field is absent or null, and an InvalidArgument
// naming the field when it has the wrong type or is out of range.
absl::StatusOr<std::optional<bool>> GetBool(const Json& body, const char* field);
absl::StatusOr<std::optional<int64_t>> GetInt(const Json& body, const char* field, int64_t lo, int64_t hi);
absl::StatusOr<std::optional<double>> GetNumber(const Json& body, const char* field);
absl::StatusOr<std::optional<std::string>> GetString(const Json& body, const char* field);

// 400 for the first key of `body` outside `supported` (a parameter this endpoint does not know or
// does not support), naming it.
absl::Status CheckSupported(const Json& body, const std::vector<const char*>& supported, const char* endpoint);

// `model`, when given, must be the served model: NotFound otherwise (404 model_not_found).
absl::Status CheckModel(const Json& body, const std::string& served_model);

// The sampling parameters and per-request options both generation endpoints take:
// temperature, top_p, top_k, min_p, n, seed, stop, stop_token_ids, presence_penalty,
// frequency_penalty, repetition_penalty, logit_bias, ignore_eos, min_tokens, priority,
// skip_special_tokens, user (accepted, unused), response_format (response_format.h). Endpoint-specific ones
// (max_tokens, logprobs) are read by the endpoint.
absl::Status ReadCommonParams(const Json& body, serving::ServingRequest* request);

// The parameters ReadCommonParams reads, for CheckSupported.
const std::vector<const char*>& CommonParamNames();

// A random id suffix (24 hex digits) for "cmpl-..." and "chatcmpl-...".
std::string RandomId();

}  // namespace moeserve::api::openai

#endif  // MOESERVE_SERVER_API_OPENAI_OPENAI_PARAMS_H_

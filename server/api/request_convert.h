#ifndef MOESERVE_SERVER_API_REQUEST_CONVERT_H_
#define MOESERVE_SERVER_API_REQUEST_CONVERT_H_

// Conversions between the moeserve.v1 messages and the engine's types, and the validation of a
// GenerateRequest that does not need the engine. Pure functions; safe from any thread.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "moeserve/v1/inference.pb.h"
#include "server/engine/request_output.h"
#include "server/sampling/sampling_params.h"

namespace moeserve::api {

inline constexpr size_t kMaxRequestIdBytes = 256;
inline constexpr size_t kMaxCacheSaltBytes = 256;

// The engine's SamplingParams for `proto` (defaults for unset fields). Range checks are left to
// moeserve::Validate().
SamplingParams FromProto(const v1::SamplingParams& proto);

// Validate(params, limits) with the field renamed as the client sees it ("sampling.temperature
// must be in [0, 100], got -1").
absl::Status ValidateSampling(const SamplingParams& params, const SamplingLimits& limits);

// Checks token ids against the vocabulary and the context, naming `field` ("token_ids.ids") in
// errors. `max_model_len`: the prompt must leave room for one output token.
absl::Status ValidatePromptIds(const std::vector<int32_t>& ids, int32_t vocab_size,
                               int32_t max_model_len, const std::string& field);

// Request-level fields that need no model: request_id and cache_salt lengths.
absl::Status ValidateRequestFields(const v1::GenerateRequest& request);

v1::FinishReason ToProto(FinishReason reason);

// Fills `response` from one engine delta. The final fields (finish reason, usage, timings) only
// when delta.finished.
void ToProto(const RequestOutput& delta, v1::GenerateResponse* response);

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_REQUEST_CONVERT_H_

#ifndef MOESERVE_SERVER_API_REQUEST_CONVERT_H_
#define MOESERVE_SERVER_API_REQUEST_CONVERT_H_

// Conversions between the moeserve.v1 messages and the serving layer's neutral types, and the
// checks of a GenerateRequest's proto shape (one input, request_id length). Everything else is
// validated by the serving layer, with the proto's field names (GrpcFieldNames). Pure functions;
// safe from any thread.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "moeserve/v1/inference.pb.h"
#include "server/engine/request_output.h"
#include "server/sampling/sampling_params.h"
#include "server/serving/serving_output.h"
#include "server/serving/serving_request.h"

namespace moeserve::api {

inline constexpr size_t kMaxRequestIdBytes = 256;

// The engine's SamplingParams for `proto` (defaults for unset fields). Range checks are the
// serving layer's.
SamplingParams FromProto(const v1::SamplingParams& proto);

// How errors name the fields of a GenerateRequest whose input is `input`: "sampling.temperature",
// "token_ids.ids[3]", "messages.messages[0].role".
serving::FieldNames GrpcFieldNames(v1::GenerateRequest::InputCase input);

// The serving request for `request`, or InvalidArgument for a proto shape the serving layer cannot
// take: no input, an empty text, ids or conversation, a request_id over kMaxRequestIdBytes.
absl::StatusOr<serving::ServingRequest> FromProto(const v1::GenerateRequest& request);

// The prompt of a TokenizeRequest, or InvalidArgument when it has none.
absl::StatusOr<serving::PromptInput> FromProto(const v1::TokenizeRequest& request);

v1::FinishReason ToProto(FinishReason reason);

// Fills `response` from one serving delta. The final fields (finish reason, usage, timings) only
// when output.finished.
void ToProto(const serving::Output& output, v1::GenerateResponse* response);

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_REQUEST_CONVERT_H_

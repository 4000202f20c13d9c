#ifndef MOESERVE_SERVER_API_OPENAI_RESPONSE_FORMAT_H_
#define MOESERVE_SERVER_API_OPENAI_RESPONSE_FORMAT_H_

// OpenAI's `response_format` -> a structured-output constraint (server/structured/constraint.h):
//   {"type": "text"}                                    no constraint
//   {"type": "json_object"}                             any JSON object
//   {"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}
// The shape is checked here, with errors naming the field. Pure functions; safe from any thread.

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/serving/serving_request.h"
#include "server/structured/constraint.h"

namespace moeserve::api::openai {

// The constraint `response_format` asks for (kNone when it is absent, null or type "text").
absl::StatusOr<structured::Constraint> ParseResponseFormat(const nlohmann::json& body);

// Reads `response_format` into request->sampling.constraint (compact JSON: no whitespace between
// tokens, so that even a weak model ends), naming the constraint's fields after it so that a
// schema the compiler refuses is a 400 naming response_format.json_schema.schema.
absl::Status ReadResponseFormat(const nlohmann::json& body, serving::ServingRequest* request);

}  // namespace moeserve::api::openai

#endif  // MOESERVE_SERVER_API_OPENAI_RESPONSE_FORMAT_H_

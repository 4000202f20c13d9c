#ifndef MOESERVE_SERVER_API_OPENAI_OPENAI_ERRORS_H_
#define MOESERVE_SERVER_API_OPENAI_OPENAI_ERRORS_H_

// Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with the HTTP status of
// the serving layer's absl::Status code (400 bad input, 401 missing or wrong key, 404 unknown
// model or route, 413 too large, 429 queue full with Retry-After, 503 loading or draining).
// Pure functions; safe from any thread.

#include <string>

#include "absl/status/status.h"
#include "server/api/http/http_message.h"

namespace moeserve::api {

// The HTTP status for a serving-layer status code.
int HttpStatusOf(absl::StatusCode code);

// An error response. `param`: the offending field or ""; `code`: OpenAI's machine code or "".
HttpResponse ErrorResponse(int status, const std::string& message, const std::string& param = "",
                           const std::string& code = "");
// The response for a serving-layer error (its field, if any, becomes `param`).
HttpResponse ErrorResponse(const absl::Status& status);

// The JSON error object alone, for an error inside an SSE stream (`data: {"error": ...}`).
std::string ErrorJson(int status, const std::string& message, const std::string& param = "",
                      const std::string& code = "");

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_OPENAI_OPENAI_ERRORS_H_

#include "server/api/openai/openai_errors.h"

#include <optional>

#include "nlohmann/json.hpp"
#include "server/serving/errors.h"

namespace moeserve::api {
namespace {

const char* ErrorType(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

std::string ErrorJson(int status, const std::string& message, const std::string& param, const std::string& code) {
  nlohmann::json error = {{"message", message},
                          {"type", ErrorType(status)},
                          {"param", param.empty() ? nlohmann::json() : nlohmann::json(param)},
                          {"code", code.empty() ? nlohmann::json() : nlohmann::json(code)}};
  return nlohmann::json{{"error", std::move(error)}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

HttpResponse ErrorResponse(int status, const std::string& message, const std::string& param, const std::string& code) {
  HttpResponse response{.status = status, .body = ErrorJson(status, message, param, code)};
  // The queue is full or the server drains: try again (elsewhere) shortly.
  if (status == 429 || status == 503) response.headers.emplace_back("Retry-After", "1");
  if (status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

HttpResponse ErrorResponse(const absl::Status& status) {
  const int http = HttpStatusOf(status.code());
  std::optional<std::string> field = serving::ErrorField(status);
  std::string code;
  if (status.code() == absl::StatusCode::kUnauthenticated) code = "invalid_api_key";
  if (status.code() == absl::StatusCode::kResourceExhausted) code = "queue_full";
  return ErrorResponse(http, std::string(status.message()), field.value_or(""), code);
}

}  // namespace moeserve::api

#include "server/api/openai/openai_router.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/api/openai/openai_errors.h"

namespace moeserve::api {
namespace {

constexpr char kPrometheusType[] = "text/plain; version=0.0.4; charset=utf-8";

bool IsGet(const HttpRequest& r) { return r.method == "GET" || r.method == "HEAD"; }

}  // namespace

OpenAiRouter::OpenAiRouter(serving::Frontend* frontend, std::function<std::string()> metrics_text,
                           std::function<bool()> ready, OpenAiRouterOptions options)
    : frontend_(frontend),
      metrics_text_(std::move(metrics_text)),
      ready_(std::move(ready)),
      options_(std::move(options)) {}

OpenAiRouter::~OpenAiRouter() = default;

void OpenAiRouter::Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) {
  const std::string& path = request.path;
  // Open routes: probes and scrapes carry no key.
  if (path == "/health") {
    if (!IsGet(request)) return exchange->Respond(ErrorResponse(405, "/health takes GET"));
    // Plain text, as probes and the gRPC health service read it.
    HttpResponse health{.status = 200, .content_type = "text/plain; charset=utf-8", .body = "SERVING\n"};
    if (!ready_()) {
      health.status = 503;
      health.body = "NOT_SERVING\n";
      health.headers.emplace_back("Retry-After", "1");
    }
    return exchange->Respond(std::move(health));
  }
  if (path == "/metrics") {
    if (!IsGet(request)) return exchange->Respond(ErrorResponse(405, "/metrics takes GET"));
    return exchange->Respond({.status = 200, .content_type = kPrometheusType, .body = metrics_text_()});
  }
  if (options_.operator_only) {
    return exchange->Respond(ErrorResponse(
        404, absl::StrCat("no route ", request.method, " ", path,
                          " on the operator port; it serves /health and /metrics")));
  }
  const std::string* authorization = request.Header("authorization");
  const std::string_view auth = authorization != nullptr ? std::string_view(*authorization) : "";
  if (absl::Status s = frontend_->Authenticate(authorization != nullptr ? &auth : nullptr); !s.ok()) {
    return exchange->Respond(ErrorResponse(s));
  }
  exchange->Respond(ErrorResponse(404, absl::StrCat("no route ", request.method, " ", path), "",
                                  "not_found"));
}

}  // namespace moeserve::api

#include "server/api/loading_responder.h"

#include "server/api/openai/openai_errors.h"

namespace moeserve::api {

class LoadingResponder::Handler final : public HttpHandler {
 public:
  void Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) override {
    HttpResponse response =
        request.path == "/health"
            ? HttpResponse{.status = 503, .content_type = "text/plain; charset=utf-8", .body = "LOADING\n"}
            : ErrorResponse(503, "the model is loading; retry shortly");
    if (request.path == "/health") response.headers.emplace_back("Retry-After", "1");
    exchange->Respond(std::move(response));
  }
};

LoadingResponder::LoadingResponder() : handler_(std::make_unique<Handler>()) {}

LoadingResponder::~LoadingResponder() { Stop(); }

absl::StatusOr<std::unique_ptr<LoadingResponder>> LoadingResponder::Start(const ApiServerOptions& options) {
  if (options.http_port <= 0) return std::unique_ptr<LoadingResponder>();
  std::unique_ptr<LoadingResponder> r(new LoadingResponder());
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Create(
      {.io_threads = 1,
       .tls_cert_file = options.tls_cert_file,
       .tls_key_file = options.tls_key_file,
       .tls_client_ca_file = options.tls_client_ca_file,
       .error_response = [](int status, const std::string& message) { return ErrorResponse(status, message); }});
  if (!http.ok()) return http.status();
  r->http_ = std::move(*http);
  absl::StatusOr<int> port = r->http_->Listen(options.host, options.http_port, r->handler_.get(),
                                              /*tls=*/!options.tls_cert_file.empty());
  if (!port.ok()) return port.status();
  return r;
}

void LoadingResponder::Stop() { http_.reset(); }

}  // namespace moeserve::api

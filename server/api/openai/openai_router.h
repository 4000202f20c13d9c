#ifndef MOESERVE_SERVER_API_OPENAI_OPENAI_ROUTER_H_
#define MOESERVE_SERVER_API_OPENAI_OPENAI_ROUTER_H_

// OpenAiRouter: the HTTP API's routes over the serving layer. GET /health (200 ready, 503 while
// draining) and GET /metrics are open to everyone (probes, Prometheus); every other route needs
// the API key (`Authorization: Bearer KEY`) when keys are configured. An operator router
// (operator_only) serves /health and /metrics alone. Unknown routes get OpenAI's 404 error, known
// routes with another method 405.
//
// Thread-safe; Handle never blocks its I/O thread (slow work goes to the work queue). The
// frontend and the callbacks must outlive the router.

#include <functional>
#include <memory>
#include <string>

#include "server/api/http/http_message.h"
#include "server/serving/frontend.h"

namespace moeserve::api {

struct OpenAiRouterOptions {
  std::string model_id;        // served model name
  bool operator_only = false;  // /health and /metrics only
};

class OpenAiRouter final : public HttpHandler {
 public:
  // `metrics_text`: the /metrics page; `ready`: /health's state.
  OpenAiRouter(serving::Frontend* frontend, std::function<std::string()> metrics_text,
               std::function<bool()> ready, OpenAiRouterOptions options);
  ~OpenAiRouter() override;

  void Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) override;

 private:
  serving::Frontend* const frontend_;
  const std::function<std::string()> metrics_text_;
  const std::function<bool()> ready_;
  const OpenAiRouterOptions options_;
};

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_OPENAI_OPENAI_ROUTER_H_

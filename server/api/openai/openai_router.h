#ifndef MOESERVE_SERVER_API_OPENAI_OPENAI_ROUTER_H_
#define MOESERVE_SERVER_API_OPENAI_OPENAI_ROUTER_H_

// OpenAiRouter: the HTTP API's routes over the serving layer.
//   GET  /health                  200 ready, 503 while draining (open: probes carry no key)
//   GET  /metrics                 Prometheus text (open)
//   GET  /v1/models, /v1/models/{id}
//   POST /v1/completions, /v1/chat/completions   (streamed with "stream": true)
//   POST /tokenize, /detokenize   (vLLM's shapes)
// Every route but the open ones needs the API key (`Authorization: Bearer KEY`) when keys are
// configured. Unknown routes get OpenAI's 404 error, known ones with another method 405. An
// operator router (operator_only) serves /health and /metrics alone.
//
// Handle never blocks its I/O thread: request bodies are parsed, prompts built and requests
// submitted on a small work queue (503 when it is full), and output flows back through the
// connection's thread (GenerationJob).
//
// Thread-safe. The frontend and the callbacks must outlive the router.

#include <functional>
#include <memory>
#include <string>

#include "server/api/http/http_message.h"
#include "server/serving/frontend.h"
#include "server/serving/parsers/reasoning_parser.h"
#include "server/serving/parsers/tool_call_syntax.h"

namespace moeserve::api {

class WorkQueue;

struct OpenAiRouterOptions {
  std::string model_id;        // the served model name
  bool operator_only = false;  // /health and /metrics only
  // The chat endpoint's output parsers (see server/serving/parsers/parser_selection.h).
  parsers::ReasoningFormat reasoning = parsers::ReasoningFormat::kNone;
  parsers::ToolCallFormat tool_calls = parsers::ToolCallFormat::kNone;
  int work_threads = 2;
  int max_queued_work = 4096;
};

class OpenAiRouter final : public HttpHandler {
 public:
  // `metrics_text`: the /metrics page; `ready`: /health's state.
  OpenAiRouter(serving::Frontend* frontend, std::function<std::string()> metrics_text, std::function<bool()> ready,
               OpenAiRouterOptions options);
  ~OpenAiRouter() override;

  void Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) override;

 private:
  // Work-queue side of the routes with bodies.
  void Completions(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange);
  void ChatCompletions(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange);
  void Tokenize(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange);
  void Detokenize(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange);
  void Models(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange);

  serving::Frontend* const frontend_;
  const std::function<std::string()> metrics_text_;
  const std::function<bool()> ready_;
  const OpenAiRouterOptions options_;
  const int64_t created_;  // the model's `created`: when the router started
  std::unique_ptr<WorkQueue> work_;
};

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_OPENAI_OPENAI_ROUTER_H_

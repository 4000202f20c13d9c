#ifndef MOESERVE_SERVER_API_API_SERVER_H_
#define MOESERVE_SERVER_API_API_SERVER_H_

// ApiServer: both front ends over one running Engine and its serving layer: the gRPC server
// (moeserve.v1.Inference, grpc.health.v1.Health, reflection) and the HTTP server (the OpenAI API
// with /health and /metrics, plus an optional operator-only port), with the same TLS, API keys,
// message-size limit and graceful drain.
//
//   auto server = ApiServer::Start(options, engine.get());
//   ... (*server)->Shutdown(absl::Seconds(30));   // drain, then cancel what is left
//
// Thread-safe. The engine must outlive the server.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/serving/api_keys.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace moeserve::serving {
class Frontend;
}  // namespace moeserve::serving

namespace moeserve::api {

class HttpServer;
class InferenceService;
class OpenAiRouter;
class ServingMetrics;

struct ApiServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 50051;                // gRPC; 0: any free port (see ApiServer::port())
  // The HTTP API (OpenAI routes, /health, /metrics) on the same host; 0: any free port; < 0: off.
  int http_port = 8000;
  // An operator-only HTTP port with /health and /metrics alone (e.g. one not exposed to API
  // clients); 0: any free port; < 0: off.
  int metrics_port = -1;

  serving::ApiKeys api_keys;  // empty: no authentication

  // TLS when both are set (PEM files); mutual TLS when tls_client_ca is set too.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;

  bool enable_reflection = true;
  // Per received message (gRPC: RESOURCE_EXHAUSTED) or HTTP request body (413).
  int64_t max_message_bytes = 16 << 20;

  // HTTP: I/O threads, the time a request's header (and then its body) may take to arrive, the
  // time a kept-alive connection may stay idle (and a write may stall), the bytes a streamed
  // response may queue behind a client that does not read (then it is aborted), and the interval
  // of SSE keep-alive comments while a request waits.
  int http_threads = 2;
  absl::Duration http_header_timeout = absl::Seconds(10);
  absl::Duration http_idle_timeout = absl::Seconds(60);
  int64_t http_max_write_buffer_bytes = 1 << 20;
  absl::Duration sse_keepalive_interval = absl::Seconds(15);

  // Keepalive: the server pings idle connections every keepalive_time and closes those that do
  // not answer within keepalive_timeout; clients may ping at most every min_client_ping_interval
  // (more often, twice: the connection is closed with ENHANCE_YOUR_CALM).
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  absl::Duration min_client_ping_interval = absl::Seconds(10);

  std::string model_id;  // GetModelInfo.model_id, the OpenAI model id
  // The chat endpoint's output parsers: "auto" (from the chat template), "none", or a name (see
  // server/serving/parsers/parser_selection.h).
  std::string reasoning_parser = "auto";
  std::string tool_call_parser = "auto";
  bool log_requests = false;  // log prompts and outputs
  // /metrics: MoE expert token counts per layer too (see ServingMetricsOptions).
  bool metrics_expert_per_layer = false;
};

class ApiServer {
 public:
  // Builds and starts the servers. InvalidArgument for bad options, NotFound for unreadable TLS
  // files, Unavailable when a port cannot be bound.
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(const ApiServerOptions& options, Engine* engine);
  ~ApiServer();  // Shutdown(0) if still serving

  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  int port() const { return port_; }
  int http_port() const { return http_port_; }        // -1 when off
  int metrics_port() const { return metrics_port_; }  // -1 when off
  bool serving() const { return serving_.load(std::memory_order_acquire); }

  // Graceful drain: health turns NOT_SERVING at once and new calls get UNAVAILABLE; calls in
  // flight may finish within `timeout`, then the rest are cancelled (their engine requests
  // aborted) and the servers stop. Idempotent; the first call's timeout wins.
  void Shutdown(absl::Duration timeout);

  // The /metrics page (also for tests).
  std::string MetricsText() const;

 private:
  // Starts the HTTP server on http_port and metrics_port (either may be off).
  absl::Status StartHttp();
  // Health: serving and the engine's model producing numbers (Engine::healthy).
  bool ready() const { return serving() && engine_->healthy(); }
  struct GrpcHealth;
  ApiServer(Engine* engine, const ApiServerOptions& options);

  Engine* const engine_;
  ApiServerOptions options_;
  std::shared_ptr<ServingMetrics> metrics_;  // shared with requests still in the engine
  std::unique_ptr<serving::Frontend> frontend_;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<OpenAiRouter> api_router_;
  std::unique_ptr<OpenAiRouter> operator_router_;
  std::unique_ptr<HttpServer> http_;
  int port_ = 0;
  int http_port_ = -1;
  int metrics_port_ = -1;
  std::atomic<bool> serving_{false};
  std::shared_ptr<GrpcHealth> grpc_health_;  // shared with the engine's health listener
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_API_SERVER_H_

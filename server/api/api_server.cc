#include "server/api/api_server.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "server/api/http/http_server.h"
#include "server/api/inference_service.h"
#include "server/api/openai/openai_errors.h"
#include "server/api/openai/openai_router.h"
#include "server/api/serving_metrics.h"
#include "server/common/logging.h"
#include "server/serving/frontend.h"
#include "server/serving/parsers/parser_selection.h"

namespace moeserve::api {
namespace {

constexpr char kServiceName[] = "moeserve.v1.Inference";
constexpr char kReflectionPluginName[] = "proto_server_reflection";

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Turns server reflection on or off for one builder, whatever the process-wide plugin
// registration (linking grpc++_reflection registers it for every server).
class ReflectionOption : public grpc::ServerBuilderOption {
 public:
  explicit ReflectionOption(bool enable) : enable_(enable) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
      return p->name() == kReflectionPluginName;
    });
    if (enable_) {
      plugins->push_back(std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>());
    }
  }

 private:
  bool enable_;
};

std::string HostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return absl::StrCat("[", host, "]:", port);  // IPv6 literal
  }
  return absl::StrCat(host, ":", port);
}

int Millis(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

}  // namespace

ApiServer::ApiServer(Engine* engine, const ApiServerOptions& options) : engine_(engine), options_(options) {}

// The gRPC health service's status, set from the engine thread too (its health listener may run
// after the server is gone: Shutdown detaches it). Thread-safe.
struct ApiServer::GrpcHealth {
  absl::Mutex mu;
  grpc::HealthCheckServiceInterface* service ABSL_GUARDED_BY(mu) = nullptr;

  void Set(bool ok) {
    absl::MutexLock lock(&mu);
    if (service == nullptr) return;
    service->SetServingStatus(kServiceName, ok);
    service->SetServingStatus(ok);
  }
  // NOT_SERVING from now on.
  void Detach() {
    Set(false);
    absl::MutexLock lock(&mu);
    service = nullptr;
  }
};

ApiServer::~ApiServer() { Shutdown(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(const ApiServerOptions& options, Engine* engine) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--port must be in [0, 65535], got ", options.port));
  }
  for (const auto& [flag, port] :
       {std::pair{"--http-port", options.http_port}, std::pair{"--metrics-port", options.metrics_port}}) {
    if (port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " must be at most 65535, got ", port));
    }
  }
  if (options.http_port >= 0 && options.http_port == options.metrics_port && options.http_port != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics-port must differ from --http-port (", options.http_port,
                                                   "), which serves /metrics and /health too"));
  }
  if (options.max_message_bytes <= 0 || options.max_message_bytes > (1LL << 31) - 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-message-bytes must be in [1, 2147483647], got ", options.max_message_bytes));
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
  }
  if (!options.tls_client_ca_file.empty() && options.tls_cert_file.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }

  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options.tls_cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadFile(options.tls_cert_file, "--tls-cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile(options.tls_key_file, "--tls-key");
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    if (!options.tls_client_ca_file.empty()) {
      absl::StatusOr<std::string> ca = ReadFile(options.tls_client_ca_file, "--tls-client-ca");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(ssl);
    // Said here, before gRPC would report a key that does not match as "cannot listen".
    if (absl::Status s = HttpServer::CheckTlsFiles({.tls_cert_file = options.tls_cert_file,
                                                    .tls_key_file = options.tls_key_file,
                                                    .tls_client_ca_file = options.tls_client_ca_file});
        !s.ok()) {
      return s;
    }
  }

  std::unique_ptr<ApiServer> s(new ApiServer(engine, options));
  s->metrics_ = std::make_shared<ServingMetrics>(
      ServingMetricsOptions{.expert_load_per_layer = options.metrics_expert_per_layer});
  s->frontend_ = std::make_unique<serving::Frontend>(
      engine, serving::FrontendOptions{.api_keys = options.api_keys, .observer = s->metrics_});
  s->service_ = std::make_unique<InferenceService>(
      s->frontend_.get(), InferenceServiceOptions{.model_id = options.model_id, .log_requests = options.log_requests});

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<ReflectionOption>(options.enable_reflection));
  builder.AddListeningPort(HostPort(options.host, options.port), credentials, &s->port_);
  builder.RegisterService(s->service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(options.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(options.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             Millis(options.min_client_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", HostPort(options.host, options.port), " (address in use or not local?)"));
  }
  s->serving_.store(true, std::memory_order_release);
  s->grpc_health_ = std::make_shared<GrpcHealth>();
  {
    absl::MutexLock lock(&s->grpc_health_->mu);
    s->grpc_health_->service = s->server_->GetHealthCheckService();
  }
  engine->SetHealthListener([health = s->grpc_health_](bool healthy) { health->Set(healthy); });
  s->grpc_health_->Set(engine->healthy());

  if (absl::Status st = s->StartHttp(); !st.ok()) {
    s->Shutdown(absl::ZeroDuration());
    return st;
  }
  MS_LOG(INFO) << "serving " << kServiceName << " on " << HostPort(options.host, s->port_)
               << (options.tls_cert_file.empty() ? "" : " (TLS)")
               << (options.api_keys.enabled() ? " with API keys" : "");
  const char* scheme = options.tls_cert_file.empty() ? "http" : "https";
  if (s->http_port_ >= 0) {
    MS_LOG(INFO) << "serving the OpenAI API on " << scheme << "://" << HostPort(options.host, s->http_port_)
                 << "/v1 (/health, /metrics)";
  }
  if (s->metrics_port_ >= 0) {
    MS_LOG(INFO) << "metrics on http://" << HostPort(options.host, s->metrics_port_) << "/metrics";
  }
  return s;
}

void ApiServer::Shutdown(absl::Duration timeout) {
  {
    absl::MutexLock lock(&shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  serving_.store(false, std::memory_order_release);
  if (grpc_health_ != nullptr) grpc_health_->Detach();
  frontend_->StartDraining();
  if (http_ != nullptr) http_->StartDraining();
  const absl::Time deadline = absl::Now() + timeout;
  const bool grpc_done = service_->WaitForNoActiveCalls(deadline);
  const bool http_done = http_ == nullptr || http_->WaitForNoneInFlight(deadline);
  if (!grpc_done || !http_done) {
    MS_LOG(WARNING) << "drain: " << service_->active_calls() << " gRPC calls and "
                    << (http_ != nullptr ? http_->in_flight() : 0)
                    << " HTTP requests still in flight after the shutdown timeout; cancelling them";
    service_->CancelInFlight();
    if (http_ != nullptr) http_->CancelInFlight();
    service_->WaitForNoActiveCalls(absl::Now() + absl::Seconds(5));
  }
  // A second for the calls that just returned to send their final status; then cancels whatever
  // is left (e.g. a handler blocked writing to a client that does not read), whose handlers see
  // the cancellation and abort their engine requests.
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
  }
  if (http_ != nullptr) http_->Stop();
}

absl::Status ApiServer::StartHttp() {
  if (options_.http_port < 0 && options_.metrics_port < 0) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Create(
      {.io_threads = options_.http_threads,
       .max_body_bytes = options_.max_message_bytes,
       .header_timeout = options_.http_header_timeout,
       .idle_timeout = options_.http_idle_timeout,
       .max_write_buffer_bytes = options_.http_max_write_buffer_bytes,
       .stream_idle_interval = options_.sse_keepalive_interval,
       .tls_cert_file = options_.tls_cert_file,
       .tls_key_file = options_.tls_key_file,
       .tls_client_ca_file = options_.tls_client_ca_file,
       .error_response = [](int status, const std::string& message) { return ErrorResponse(status, message); }});
  if (!http.ok()) return http.status();
  http_ = std::move(*http);
  auto metrics = [this] { return MetricsText(); };
  auto ready = [this] { return this->ready(); };
  if (options_.http_port >= 0) {
    const std::string& chat_template = frontend_->prompts().chat_template_source();
    absl::StatusOr<parsers::ReasoningFormat> reasoning =
        parsers::ResolveReasoningFormat(options_.reasoning_parser, chat_template);
    if (!reasoning.ok()) return reasoning.status();
    absl::StatusOr<parsers::ToolCallFormat> tool_calls =
        parsers::ResolveToolCallFormat(options_.tool_call_parser, chat_template);
    if (!tool_calls.ok()) return tool_calls.status();
    MS_LOG(INFO) << "chat output parsers: reasoning " << parsers::ReasoningFormatName(*reasoning) << ", tool calls "
                 << parsers::ToolCallFormatName(*tool_calls);
    api_router_ = std::make_unique<OpenAiRouter>(
        frontend_.get(), metrics, ready,
        OpenAiRouterOptions{.model_id = options_.model_id, .reasoning = *reasoning, .tool_calls = *tool_calls});
    absl::StatusOr<int> port = http_->Listen(options_.host, options_.http_port, api_router_.get(),
                                             /*tls=*/!options_.tls_cert_file.empty());
    if (!port.ok()) return port.status();
    http_port_ = *port;
  }
  if (options_.metrics_port >= 0) {
    operator_router_ =
        std::make_unique<OpenAiRouter>(frontend_.get(), metrics, ready, OpenAiRouterOptions{.operator_only = true});
    absl::StatusOr<int> port =
        http_->Listen(options_.host, options_.metrics_port, operator_router_.get(), /*tls=*/false);
    if (!port.ok()) return port.status();
    metrics_port_ = *port;
  }
  return absl::OkStatus();
}

std::string ApiServer::MetricsText() const { return metrics_->RenderPrometheus(frontend_->GetMetrics()); }

}  // namespace moeserve::api

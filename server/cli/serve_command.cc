// `moeserve serve`: the gRPC and OpenAI HTTP inference server (see server/api/serve.h).

#include <unistd.h>

#include <cstdio>
#include <memory>

#include "absl/strings/ascii.h"
#include "server/api/serve.h"
#include "server/cli/commands.h"
#include "server/common/logging.h"

namespace moeserve {
namespace {

// The HTTP flags kept in the CLI's units (seconds; port 0 = off) until the options are built.
struct HttpFlags {
  int port = 8000;
  double header_timeout_seconds = 10.0;
  double idle_timeout_seconds = 60.0;
  double sse_keepalive_seconds = 15.0;
};

}  // namespace

void AddServeCommand(CLI::App& app, absl::Status* status) {
  auto o = std::make_shared<api::ServeOptions>();
  o->engine.model_dir = DefaultModelDir();
  auto shutdown_seconds = std::make_shared<double>(30.0);
  auto kv_cache_mib = std::make_shared<int64_t>(o->engine.kv_cache_memory_bytes >> 20);
  auto no_prefix_caching = std::make_shared<bool>(false);
  auto no_reflection = std::make_shared<bool>(false);
  auto seed = std::make_shared<int64_t>(-1);
  auto http = std::make_shared<HttpFlags>();

  CLI::App* cmd =
      app.add_subcommand("serve", "Serve the model over gRPC (moeserve.v1.Inference) and the OpenAI HTTP API");
  // Model and engine.
  cmd->add_option("--model", o->engine.model_dir, "Hugging Face model directory")->capture_default_str();
  cmd->add_option("--tokenizer", o->engine.tokenizer_dir, "tokenizer directory (default: --model)");
  cmd->add_option("--served-model-name", o->server.model_id,
                  "model id of the OpenAI API and GetModelInfo (default: the model directory's name)");
  cmd->add_option("--device", o->engine.device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--threads", o->engine.num_threads, "CPU threads (0 = all)")->capture_default_str();
  cmd->add_option("--kv-cache-mib", *kv_cache_mib,
                  "CPU KV cache memory budget in MiB (0 = auto: one full-context request, at most a quarter of "
                  "the available memory; the model's context is capped to what fits)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--num-kv-blocks", o->engine.num_kv_blocks, "KV blocks (overrides --kv-cache-mib)");
  AddDeviceMemoryOptions(cmd, &o->engine);
  AddParallelOptions(cmd, &o->engine);
  AddSpeculativeOptions(cmd, &o->engine.speculative);
  cmd->add_option("--block-size", o->engine.block_size, "tokens per KV block")->capture_default_str();
  cmd->add_flag("--no-prefix-caching", *no_prefix_caching, "disable prefix caching");
  cmd->add_option("--max-model-len", o->engine.max_model_len, "context length (0 = the model's)")
      ->capture_default_str();
  cmd->add_option("--max-num-seqs", o->engine.max_num_seqs, "running requests at most")->capture_default_str();
  cmd->add_option("--max-num-samples", o->engine.max_num_samples, "SamplingParams.n at most (parallel sampling)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-num-batched-tokens", o->engine.max_num_batched_tokens,
                  "tokens per step at most (0 = 512 on the CPU, 2048 on a GPU)")
      ->capture_default_str();
  cmd->add_option("--max-queued-requests", o->engine.max_queued_requests,
                  "refuse new requests (RESOURCE_EXHAUSTED, HTTP 429) beyond this many waiting; "
                  "0 = no limit; -1 = twice min(--max-num-seqs, KV blocks), at least --max-num-samples")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1 << 30));
  cmd->add_option("--max-queued-tokens", o->engine.max_queued_tokens,
                  "... or beyond this many waiting prompt tokens; 0 = no limit")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-queue-time", o->engine.max_queue_time_seconds,
                  "refuse (RESOURCE_EXHAUSTED, HTTP 429) a request still waiting to start after "
                  "this many seconds; 0 = no limit")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  cmd->add_option("--seed", *seed, "seed for requests without one (default: random)");
  // Network.
  cmd->add_option("--host", o->server.host, "address to bind (loopback unless told)")->capture_default_str();
  cmd->add_option("--port", o->server.port, "gRPC port (0 = any free port)")->capture_default_str();
  cmd->add_option("--http-port", http->port, "HTTP port of the OpenAI API (/v1/...), /health and /metrics (0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--metrics-port", o->server.metrics_port,
                  "extra HTTP port with /metrics and /health only, e.g. one API clients cannot "
                  "reach (0 = any free port, -1 = off)")
      ->capture_default_str();
  cmd->add_option("--reasoning-parser", o->server.reasoning_parser,
                  "chat: split <think>...</think> into reasoning_content: auto (from the chat "
                  "template), none, deepseek_r1, qwen3")
      ->capture_default_str();
  cmd->add_option("--tool-call-parser", o->server.tool_call_parser,
                  "chat: parse tool calls: auto (from the chat template), none, deepseek_v3, hermes")
      ->capture_default_str();
  cmd->add_option("--http-threads", o->server.http_threads,
                  "HTTP I/O threads (connections are event-driven: no thread per connection)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--http-header-timeout", http->header_timeout_seconds,
                  "seconds a request's header (then its body) may take to arrive; later: 408")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--http-idle-timeout", http->idle_timeout_seconds,
                  "seconds a kept-alive HTTP connection may stay idle, or a write stall")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  cmd->add_option("--http-max-write-buffer", o->server.http_max_write_buffer_bytes,
                  "bytes a streamed response may queue behind a client that does not read; "
                  "beyond, the request is aborted and the connection closed")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{4096}, int64_t{1} << 30));
  cmd->add_option("--sse-keepalive", http->sse_keepalive_seconds,
                  "seconds between `: keep-alive` SSE comments while a streamed request waits")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  cmd->add_flag("--metrics-expert-per-layer", o->server.metrics_expert_per_layer,
                "/metrics: MoE expert token counts per layer too (layers x experts series; default: "
                "summed over layers)");
  cmd->add_option("--expert-load-interval-steps", o->engine.expert_load_interval_steps,
                  "read the MoE expert counters from the device every N steps (and when idle); 0 = off")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-message-bytes", o->server.max_message_bytes,
                  "largest gRPC message or HTTP request body accepted (HTTP: 413 beyond)")
      ->capture_default_str();
  cmd->add_flag("--no-reflection", *no_reflection, "do not offer gRPC server reflection");
  cmd->add_option("--shutdown-timeout", *shutdown_seconds,
                  "seconds in-flight requests may take to finish after SIGTERM/SIGINT")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  // Security.
  // An empty key (e.g. --api-key "$KEY" with KEY unset) would serve without authentication.
  cmd->add_option("--api-key", o->api_key,
                  "require `authorization: Bearer KEY` on gRPC and HTTP (prefer --api-key-file)")
      ->check(CLI::Validator(
          [](std::string& key) {
            return absl::StripAsciiWhitespace(key).empty()
                       ? std::string(
                             "must not be empty (an unset variable?); leave --api-key out "
                             "to serve without authentication")
                       : std::string();
          },
          "KEY"));
  cmd->add_option("--api-key-file", o->api_key_file, "file with one accepted API key per line")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tls-cert", o->server.tls_cert_file,
                  "server certificate chain (PEM); gRPC and the HTTP API then use TLS")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tls-key", o->server.tls_key_file, "server private key (PEM)")->check(CLI::ExistingFile);
  cmd->add_option("--tls-client-ca", o->server.tls_client_ca_file,
                  "require client certificates signed by this CA (mutual TLS)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--log-requests", o->server.log_requests, "log prompts and outputs (off by default)");

  cmd->callback([o, status, &app, shutdown_seconds, kv_cache_mib, no_prefix_caching, no_reflection, seed, http] {
    // `serve` logs at info unless --log-level was given.
    if (app.get_option("--log-level")->count() == 0) SetMinLogLevel(LogLevel::kInfo);
    o->engine.kv_cache_memory_bytes = *kv_cache_mib << 20;
    o->engine.enable_prefix_caching = !*no_prefix_caching;
    if (*seed >= 0) o->engine.seed = static_cast<uint64_t>(*seed);
    o->server.enable_reflection = !*no_reflection;
    o->server.http_port = http->port == 0 ? -1 : http->port;
    o->server.http_header_timeout = absl::Seconds(http->header_timeout_seconds);
    o->server.http_idle_timeout = absl::Seconds(http->idle_timeout_seconds);
    o->server.sse_keepalive_interval = absl::Seconds(http->sse_keepalive_seconds);
    o->shutdown_timeout = absl::Seconds(*shutdown_seconds);
    o->on_ready = [o](const api::ApiServer& server) {
      const char* host = o->server.host.c_str();
      std::fprintf(stderr, "moeserve: serving on %s:%d (pid %d)", host, server.port(), getpid());
      if (server.http_port() >= 0) {
        std::fprintf(stderr, ", OpenAI API on %s://%s:%d/v1", o->server.tls_cert_file.empty() ? "http" : "https", host,
                     server.http_port());
      }
      if (server.metrics_port() >= 0) {
        std::fprintf(stderr, ", metrics on http://%s:%d/metrics", host, server.metrics_port());
      }
      std::fprintf(stderr, "\n");
    };
    *status = RunGroup(o->engine, [o](DistContext* dist) {
      o->dist = dist;
      return api::RunServe(*o);
    });
  });
}

}  // namespace moeserve

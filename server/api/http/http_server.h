#ifndef MOESERVE_SERVER_API_HTTP_HTTP_SERVER_H_
#define MOESERVE_SERVER_API_HTTP_HTTP_SERVER_H_

// HttpServer: an event-driven HTTP/1.1 server (Boost.Beast over Asio) for the OpenAI API and the
// operator endpoints. A fixed set of I/O threads serves every connection (no thread per
// connection): each connection is a state machine on its own strand, so thousands of concurrent
// streams cost memory, not threads, and a slow or silent client never holds a thread.
//
// Why Beast/Asio (Debian's libboost-dev) rather than libevent's evhttp: Beast's parser enforces
// header and body limits per message, and every read, write and timer is explicit, which is what
// the limits below need: header and idle deadlines, a bounded per-connection write buffer with a
// disconnect watch while a response streams, 100-continue, pipelining, and TLS through
// asio::ssl on the same code path. evhttp runs one event base per thread and buffers chunked
// replies without bound.
//
// Limits: a body over max_body_bytes gets 413, a header over max_header_bytes 431, a request
// whose header (or body) does not arrive in time 408; a keep-alive connection idle for
// idle_timeout is closed; a streamed response whose client lets more than max_write_buffer_bytes
// pile up (or does not read for idle_timeout) is cancelled and its connection closed.
//
// Thread-safe. Handlers must outlive the server.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/api/http/http_message.h"

namespace moeserve::api {

struct HttpServerOptions {
  int io_threads = 2;
  int64_t max_body_bytes = 16 << 20;
  int32_t max_header_bytes = 16 << 10;
  // From a connection's first byte (or accept) to the end of a request's header; then the same
  // again for its body.
  absl::Duration header_timeout = absl::Seconds(10);
  // A keep-alive connection waiting for its next request; a write that does not progress.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Bytes of a streamed response queued behind a client that does not read.
  int64_t max_write_buffer_bytes = 1 << 20;
  // HttpExchange on_idle after this long without a write while streaming.
  absl::Duration stream_idle_interval = absl::Seconds(15);
  // TLS for listeners that ask for it: PEM files; client certificates when client_ca is set.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // The body of the server's own error responses (413, 431, 408, 400), e.g. OpenAI's error JSON.
  std::function<HttpResponse(int status, const std::string& message)> error_response;
};

class HttpServer {
 public:
  // Reads the TLS files when set: InvalidArgument naming what is wrong (unreadable, not PEM, a
  // key that does not match the certificate).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(HttpServerOptions options);
  // The same checks of the TLS files alone (before other servers start on them).
  static absl::Status CheckTlsFiles(const HttpServerOptions& options);
  ~HttpServer();  // Stop()

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (0: any free port) and serves it with `handler`, over TLS when `tls`.
  // Returns the bound port; Unavailable when it cannot be bound.
  absl::StatusOr<int> Listen(const std::string& host, int port, HttpHandler* handler, bool tls);

  // Responses in progress (a request read and not yet answered in full).
  int in_flight() const;
  // From now on every response closes its connection (requests are still read and answered, so
  // that probes see the handler's 503), and idle kept-alive connections close now.
  void StartDraining();
  // Waits until no response is in progress, or `deadline`; true when none is.
  bool WaitForNoneInFlight(absl::Time deadline) const;
  // Cancels the responses in progress (their handlers' on_cancel runs) and closes their
  // connections.
  void CancelInFlight();
  // Stops listening, closes every connection and joins the I/O threads. Idempotent.
  void Stop();

  int connections() const;  // open connections (tests)

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_HTTP_HTTP_SERVER_H_

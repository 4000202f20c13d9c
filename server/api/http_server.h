#ifndef MOESERVE_SERVER_API_HTTP_SERVER_H_
#define MOESERVE_SERVER_API_HTTP_SERVER_H_

// A minimal HTTP/1.1 server for the operator endpoints (/metrics, /health): GET and HEAD only, one
// connection at a time, `Connection: close`, no request bodies. Enough for Prometheus scrapes and
// load-balancer probes; not for traffic.
//
// Thread-safe: Start/Stop from one owner thread; the handler runs on the server's thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moeserve::api {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  // Called with the request path (query string removed).
  using Handler = std::function<HttpResponse(const std::string& path)>;

  explicit HttpServer(Handler handler);
  ~HttpServer();  // Stop()

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0: any free port) and starts serving. Returns the bound port.
  // REQUIRES: not started.
  absl::StatusOr<int> Start(const std::string& host, int port);
  // Stops serving and joins the thread. Idempotent.
  void Stop();

 private:
  void Loop();
  void Serve(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int wake_fd_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_HTTP_SERVER_H_

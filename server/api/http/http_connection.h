#ifndef MOESERVE_SERVER_API_HTTP_HTTP_CONNECTION_H_
#define MOESERVE_SERVER_API_HTTP_HTTP_CONNECTION_H_

// Internal to HttpServer: the state shared by the server and its connections, and the start of a
// connection over plain TCP or TLS. Only http_server.cc and http_connection.cc include it.

#include <atomic>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl/context.hpp"
#include "server/api/http/http_message.h"
#include "server/api/http/http_server.h"

namespace moeserve::api::http_internal {

// What the server can ask of a live connection; each call posts to the connection's strand.
class ConnectionControl {
 public:
  virtual ~ConnectionControl() = default;
  // Close now if idle after a response, else after the current (or first) response.
  virtual void Drain() = 0;
  // Cancel the response in progress, if any, and close now.
  virtual void Cancel() = 0;
};

// Shared by the server and its connections (which may outlive the server object briefly).
struct ServerState {
  explicit ServerState(HttpServerOptions o) : options(std::move(o)) {}

  const HttpServerOptions options;
  std::atomic<bool> draining{false};

  mutable absl::Mutex mu;
  absl::flat_hash_map<ConnectionControl*, std::weak_ptr<ConnectionControl>> connections ABSL_GUARDED_BY(mu);
  int in_flight ABSL_GUARDED_BY(mu) = 0;

  // The error response for `status` (options.error_response, or plain text).
  HttpResponse Error(int status, const std::string& message) const;
};

// Starts serving an accepted socket (whose executor is its strand). `tls` may be null (plain).
void StartConnection(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context* tls, HttpHandler* handler,
                     std::shared_ptr<ServerState> state);

}  // namespace moeserve::api::http_internal

#endif  // MOESERVE_SERVER_API_HTTP_HTTP_CONNECTION_H_

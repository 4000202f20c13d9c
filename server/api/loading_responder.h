#ifndef MOESERVE_SERVER_API_LOADING_RESPONDER_H_
#define MOESERVE_SERVER_API_LOADING_RESPONDER_H_

// While `moeserve serve` loads its model (which may take minutes), the HTTP port already answers:
// /health with 503 LOADING and every other route with OpenAI's 503 error, so that probes and
// clients see "not ready yet" rather than a refused connection. Stopped (the port closed) right
// before the ApiServer binds it.
//
// Thread-safe.

#include <memory>

#include "absl/status/statusor.h"
#include "server/api/api_server.h"
#include "server/api/http/http_message.h"
#include "server/api/http/http_server.h"

namespace moeserve::api {

class LoadingResponder {
 public:
  // Null (and OK) when the HTTP port is off or "any free port" (nothing to hold).
  static absl::StatusOr<std::unique_ptr<LoadingResponder>> Start(const ApiServerOptions& options);
  ~LoadingResponder();  // Stop()

  // Closes the port and every connection.
  void Stop();

 private:
  class Handler;
  LoadingResponder();
  std::unique_ptr<Handler> handler_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_LOADING_RESPONDER_H_

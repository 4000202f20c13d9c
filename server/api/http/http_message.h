#ifndef MOESERVE_SERVER_API_HTTP_HTTP_MESSAGE_H_
#define MOESERVE_SERVER_API_HTTP_HTTP_MESSAGE_H_

// What the HTTP server hands to its handlers and takes back, free of the HTTP library's types:
// a parsed request, a whole response, and the HttpExchange through which a handler answers now
// or later, from any thread, as one response or as a stream of chunks (SSE).

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace moeserve::api {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string target;                                        // as sent: "/v1/models?x=1"
  std::string path;                                          // the target without the query: "/v1/models"
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;

  // The first header called `name` (lower case), or null.
  const std::string* Header(absl::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return &value;
    }
    return nullptr;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // more headers (Retry-After, ...)
  std::string body;
};

// One request's link to its connection. Thread-safe; every method may be called from any thread
// and after the connection is gone (they then do nothing). A handler answers exactly once: with
// Respond(), or with StartStream(), any number of Write()s and End().
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;

  // A whole response.
  virtual void Respond(HttpResponse response) = 0;

  // A streamed response: the head now (Transfer-Encoding: chunked), then each Write as a chunk.
  virtual void StartStream(int status, std::string content_type,
                           std::vector<std::pair<std::string, std::string>> headers) = 0;
  // Queues `data` as one chunk. When more than the connection's write-buffer limit is queued (the
  // client stopped reading) the connection is closed and the OnCancel callback runs.
  virtual void Write(std::string data) = 0;
  virtual void End() = 0;

  // Callbacks, run on the connection's thread (never concurrently with each other):
  //   on_wake: after Wake(); the handler reads its output and Writes it.
  //   on_idle: nothing was written for the server's keep-alive interval while streaming.
  //   on_cancel: the response cannot complete (client gone or too slow, server stopping): stop the
  //     work. Called at most once, and at once if that already happened; no callback runs after.
  // Set them once. Setting them runs on_wake once (a Wake() that came before they were set is
  // not lost): answer what precedes the output (StartStream) before setting them.
  virtual void SetCallbacks(std::function<void()> on_wake, std::function<void()> on_idle,
                            std::function<void()> on_cancel) = 0;
  // Makes the connection run on_wake (coalesced: several Wakes before it runs make one call).
  // Cheap; safe from the engine thread.
  virtual void Wake() = 0;
  // True once on_cancel ran or would run.
  virtual bool cancelled() const = 0;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Called on a connection's I/O thread, which it must not block: slow work goes elsewhere and
  // answers through `exchange` later.
  virtual void Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) = 0;
};

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_HTTP_HTTP_MESSAGE_H_

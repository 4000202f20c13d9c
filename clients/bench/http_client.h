// A small HTTP/1.1 client for streamed responses (Boost.Beast over Asio), the transport under
// moeserve-bench's OpenAI backends. It knows nothing of OpenAI or of measurements: it sends a
// request and hands the response body to an HttpResponseHandler as the bytes are read, each read
// stamped with the time it completed, so a server-sent-events stream is seen chunk by chunk.
//
// One I/O thread runs every exchange (no thread per stream). Connections are kept alive and
// reused by later requests; a request that fails on a reused connection before any response
// arrives (the server closed it while idle) is retried once on a fresh one. Plain http:// only.
//
// Thread safety: Send() and Exchange::Cancel() are safe from any thread; handler callbacks run on
// the I/O thread, one exchange's in order.
#ifndef MOESERVE_CLIENTS_BENCH_HTTP_CLIENT_H_
#define MOESERVE_CLIENTS_BENCH_HTTP_CLIENT_H_

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace moeserve::bench {

// http://HOST[:PORT][/PATH]: host, port (default 80) and the path prefix without a trailing '/'.
struct HttpUrl {
  std::string host;
  std::string port = "80";
  std::string path;  // "" or "/v1"
};
absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

struct HttpRequest {
  std::string method = "POST";                               // POST or GET
  std::string target;                                        // path and query, e.g. "/v1/completions"
  std::vector<std::pair<std::string, std::string>> headers;  // besides Host and Content-Length
  std::string body;
  double timeout_s = 0;  // whole exchange (0: none)
};

class HttpResponseHandler {
 public:
  enum class Outcome {
    kComplete,   // the whole response was read
    kCancelled,  // Exchange::Cancel()
    kTimeout,    // HttpRequest::timeout_s passed
    kError,      // could not connect, send or read (message says what)
  };
  virtual ~HttpResponseHandler() = default;
  virtual void OnHead(int status) = 0;
  // Body bytes as read, stamped with the time the read completed. Returning false ends the
  // exchange (OnEnd with kCancelled, message "aborted by the handler").
  virtual bool OnBody(std::string_view bytes, std::chrono::steady_clock::time_point at) = 0;
  // Last, exactly once, also when OnHead never came.
  virtual void OnEnd(Outcome outcome, const std::string& message, std::chrono::steady_clock::time_point at) = 0;
};

class HttpClient {
 public:
  class Exchange {
   public:
    virtual ~Exchange() = default;
    // Ends the exchange with kCancelled unless it already ended; closes its connection.
    virtual void Cancel() = 0;
  };

  // Resolves url's host now; starts the I/O thread.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(const HttpUrl& url);
  ~HttpClient();  // cancels open exchanges and joins the I/O thread
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts `request`; `handler` must stay alive until its OnEnd.
  std::shared_ptr<Exchange> Send(HttpRequest request, HttpResponseHandler* handler);

  // Sends `request` and waits for the whole response: {status, body}.
  absl::StatusOr<std::pair<int, std::string>> Fetch(HttpRequest request);

  const HttpUrl& url() const { return url_; }

 private:
  struct Impl;
  class ExchangeImpl;
  explicit HttpClient(HttpUrl url);
  HttpUrl url_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_HTTP_CLIENT_H_

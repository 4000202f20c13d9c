#ifndef MOESERVE_TESTS_HTTP_HTTP_TEST_CLIENT_H_
#define MOESERVE_TESTS_HTTP_HTTP_TEST_CLIENT_H_

// A blocking HTTP/1.1 client over a raw socket, for tests that need byte-level control (partial
// headers, silence, keep-alive, oversized bodies). Not thread-safe; one per thread.

#include <map>
#include <optional>
#include <string>

#include "absl/time/time.h"

namespace moeserve::testing {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // de-chunked
};

class RawHttpClient {
 public:
  // Connects to 127.0.0.1:port; connected() tells whether it worked.
  explicit RawHttpClient(int port);
  ~RawHttpClient();
  RawHttpClient(const RawHttpClient&) = delete;
  RawHttpClient& operator=(const RawHttpClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Sends raw bytes; false when the connection is gone.
  bool Send(const std::string& bytes);
  // Reads one response (Content-Length or chunked body; none for a HEAD request), or nullopt on
  // close/timeout.
  std::optional<RawResponse> Read(absl::Duration timeout = absl::Seconds(10), bool head_only = false);
  // Waits up to `timeout` for the server to close the connection (EOF or reset); true if it did.
  bool WaitForClose(absl::Duration timeout);

  // A request with Content-Length, keep-alive by HTTP/1.1 default.
  static std::string Request(const std::string& method, const std::string& path, const std::string& body = "",
                             const std::string& extra_headers = "");

 private:
  // Appends what arrives by `deadline` to `buffer_`: its size, 0 on close or reset, -1 on timeout.
  int Receive(absl::Time deadline);
  // Reads until `buffer_` holds `n` bytes or `deadline`; false on close/timeout.
  bool Fill(size_t n, absl::Time deadline);
  bool FillUntil(const std::string& delimiter, absl::Time deadline, size_t* at);

  int fd_ = -1;
  std::string buffer_;
};

// A loopback port free a moment ago (it may be taken again before it is used: retry).
int FreePort();

// One request on a fresh connection.
std::optional<RawResponse> HttpRequestOnce(int port, const std::string& method, const std::string& path,
                                           const std::string& body = "", const std::string& extra_headers = "");

}  // namespace moeserve::testing

#endif  // MOESERVE_TESTS_HTTP_HTTP_TEST_CLIENT_H_

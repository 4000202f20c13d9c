// An in-process fake OpenAI-compatible HTTP server for moeserve-bench tests: POST /v1/completions
// and /v1/chat/completions stream server-sent events on a fixed schedule (first chunk at `ttft`,
// then one chunk every `itl`, times measured from the request's arrival), ending with a usage chunk
// and `data: [DONE]`; or fail, or hang, as the test's behaviour function decides. GET /v1/models
// lists "fake". HTTP/1.1 with keep-alive, chunked transfer encoding, one thread per connection
// (blocking Boost.Beast), as the gRPC fake uses a thread per call. Safe for concurrent requests.
#ifndef MOESERVE_TESTS_CLIENTS_OPENAI_FAKE_SERVER_H_
#define MOESERVE_TESTS_CLIENTS_OPENAI_FAKE_SERVER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"

namespace moeserve::bench::testing {

struct FakeHttpBehavior {
  double ttft_s = 0;
  double itl_s = 0;
  int tokens = -1;  // output tokens (-1: the request's max_tokens)
  int tokens_per_chunk = 1;
  int http_status = 200;       // != 200: answer at once with this status and an OpenAI error body
  int fail_after_chunks = -1;  // >= 0: send an error event after this many chunks and end
  bool hang = false;           // send nothing until the client goes away
  bool close_after = false;    // "Connection: close" and close after this response
  bool drop_after = false;     // close after this response without saying so (a stale keep-alive)
};

class FakeOpenAiServer {
 public:
  // Called with the request body (parsed) and the path.
  using BehaviorFn = std::function<FakeHttpBehavior(const nlohmann::json& body)>;

  // Listens on 127.0.0.1 with a free port. `api_key`: when not empty, requests without
  // "Authorization: Bearer <api_key>" get 401.
  explicit FakeOpenAiServer(BehaviorFn behave, std::string api_key = "");
  ~FakeOpenAiServer();

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int cancelled() const;    // streams the client left before their end
  int connections() const;  // connections accepted
  int requests() const;     // completion requests read
  // When the last request with this X-Request-Id wrote each chunk that carries tokens (steady
  // clock, taken just before the write).
  std::vector<std::chrono::steady_clock::time_point> WriteTimes(const std::string& request_id) const;
  // The last request body received with this X-Request-Id.
  nlohmann::json Body(const std::string& request_id) const;

 private:
  struct Impl;
  int port_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeserve::bench::testing

#endif  // MOESERVE_TESTS_CLIENTS_OPENAI_FAKE_SERVER_H_

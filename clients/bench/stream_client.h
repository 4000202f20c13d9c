// The seam between moeserve-bench's load logic and a server protocol. The Runner decides when
// each request starts and records what happens to it; a StreamClient (gRPC Generate, OpenAI
// completions or chat over HTTP) sends the request and reports the stream's events to a
// StreamObserver, which does all the timing. So every backend is measured by the same code, and
// a transport only has to report, as soon as the bytes arrive, each response that carries tokens.
#ifndef MOESERVE_CLIENTS_BENCH_STREAM_CLIENT_H_
#define MOESERVE_CLIENTS_BENCH_STREAM_CLIENT_H_

#include <chrono>
#include <memory>
#include <string>

#include "clients/bench/dataset.h"

namespace moeserve::bench {

using Clock = std::chrono::steady_clock;

// What to send, besides the prompt.
struct RequestSpec {
  std::string request_id;  // "bench-<index>"
  float temperature = 0;
  bool ignore_eos = true;
  std::string cache_salt;  // "" none
  double timeout_s = 0;    // deadline of the call (0: none); it ends as DEADLINE_EXCEEDED
};

// Events of one request's stream, called on the client's I/O threads in order; OnDone exactly
// once, last. Implementations must be quick (they run on the I/O path).
class StreamObserver {
 public:
  virtual ~StreamObserver() = default;
  // A response carrying `tokens` (>= 1) output tokens arrived at `at` (read from the socket).
  // Transports that see text rather than ids count one token per response that carries text.
  virtual void OnTokens(int tokens, Clock::time_point at) = 0;
  // The server's finish reason, upper case: STOP, LENGTH, ABORT, TOOL_CALLS.
  virtual void OnFinishReason(const std::string& reason) = 0;
  // The server's usage figures; 0 for what it did not report.
  virtual void OnUsage(int prompt_tokens, int completion_tokens, int cached_tokens) = 0;
  // The stream ended: `status` is a gRPC status code name ("OK", "CANCELLED", ...; HTTP statuses
  // are mapped onto them), `error` the server's or the transport's message when not OK.
  virtual void OnDone(const std::string& status, const std::string& error, Clock::time_point at) = 0;
};

// One request in flight. Destroyed by the Runner only after its observer's OnDone.
class StreamCall {
 public:
  virtual ~StreamCall() = default;
  // Ends the call (OnDone with CANCELLED) unless it already ended. Safe from any thread.
  virtual void Cancel() = 0;
};

// Starts requests; safe to call from one thread while earlier calls run.
class StreamClient {
 public:
  virtual ~StreamClient() = default;
  // Starts the request; events go to `observer`, which must outlive the call's OnDone.
  virtual std::unique_ptr<StreamCall> Start(const BenchPrompt& prompt, const RequestSpec& spec,
                                            StreamObserver* observer) = 0;
};

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_STREAM_CLIENT_H_

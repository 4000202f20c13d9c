// Drives a load test through a StreamClient (gRPC, or OpenAI's HTTP API): starts requests with
// open-loop arrivals (ArrivalGenerator), an optional cap on requests in flight (closed loop), or
// both, and times every response of every stream on the client's monotonic clock
// (RequestRecorder, the same code whatever the transport).
//
// One dispatcher thread sleeps until each arrival and starts the call; the client's own I/O
// threads deliver the events, so hundreds of concurrent streams need no thread each. Run() is
// synchronous and may be called again (one run at a time); Stop() is safe to call from any thread.
#ifndef MOESERVE_CLIENTS_BENCH_RUNNER_H_
#define MOESERVE_CLIENTS_BENCH_RUNNER_H_

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "clients/bench/dataset.h"
#include "clients/bench/metrics.h"
#include "clients/bench/stream_client.h"

namespace moeserve::bench {

struct RunOptions {
  // Open loop: arrivals per second (+inf: all at once) and gamma shape of the gaps (1 = Poisson).
  double request_rate = std::numeric_limits<double>::infinity();
  double burstiness = 1.0;
  // Closed loop: requests in flight at most; 0 = no cap.
  int max_concurrency = 0;
  // Stop after this many requests (0: no count limit) and/or after this many seconds of sending
  // (0: no time limit). At least one must be set. Prompts are used in turn and repeat.
  int num_requests = 0;
  double duration_s = 0;
  // Requests sent and awaited before the measured run; not recorded.
  int warmup = 0;
  uint64_t seed = 0;
  // Deadline of each call (0: none) — it ends as DEADLINE_EXCEEDED.
  double request_timeout_s = 0;
  // After sending stops, streams still open this long are cancelled (0: wait for all).
  double drain_timeout_s = 0;
  // Sampling for every request: max_tokens comes from the prompt.
  float temperature = 0;
  bool ignore_eos = true;
  // Prefix-cache salt sent with every request ("" none).
  std::string cache_salt;
  // Progress bar on stderr, redrawn every 200 ms.
  bool progress = false;
  // Polled every 50 ms; when it turns true the run stops and open streams are cancelled.
  const std::atomic<bool>* interrupt = nullptr;
};

struct RunResult {
  std::vector<RequestRecord> records;           // every sent request, in send order
  double duration_s = 0;                        // first send to last completion
  std::chrono::steady_clock::time_point start;  // the origin of the records' offsets
};

class Runner {
 public:
  explicit Runner(std::unique_ptr<StreamClient> client);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // REQUIRES: prompts not empty; num_requests > 0 or duration_s > 0.
  RunResult Run(const std::vector<BenchPrompt>& prompts, const RunOptions& options);

  // Stops sending and cancels the streams in flight; Run() returns with them recorded CANCELLED.
  void Stop();

 private:
  struct Request;
  struct State;

  std::unique_ptr<StreamClient> client_;
  std::shared_ptr<State> state_;
};

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_RUNNER_H_

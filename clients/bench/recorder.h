// The measurements of one request, taken from its stream's events: the same code times every
// backend (gRPC or HTTP), so their figures compare. Times are on the monotonic clock, relative to
// the run's start `t0`.
//
// Thread safety: the events of one request come from one thread at a time (the transport's I/O
// path); record() is read only after OnDone. `on_done` is called from OnDone.
#ifndef MOESERVE_CLIENTS_BENCH_RECORDER_H_
#define MOESERVE_CLIENTS_BENCH_RECORDER_H_

#include <atomic>
#include <functional>

#include "clients/bench/metrics.h"
#include "clients/bench/stream_client.h"

namespace moeserve::bench {

class RequestRecorder : public StreamObserver {
 public:
  // `token_counter` (may be null) is bumped by every token, for live progress.
  RequestRecorder(Clock::time_point t0, int index, double scheduled_s, std::atomic<long long>* token_counter,
                  std::function<void(Clock::time_point)> on_done);

  // Call right before the request is handed to the transport. `client_input_tokens`: the
  // prompt's length when the client knows it (token ids), else 0.
  void MarkSent(int client_input_tokens);

  void OnTokens(int tokens, Clock::time_point at) override;
  void OnFinishReason(const std::string& reason) override;
  void OnUsage(int prompt_tokens, int completion_tokens, int cached_tokens) override;
  void OnDone(const std::string& status, const std::string& error, Clock::time_point at) override;

  RequestRecord& record() { return record_; }

 private:
  Clock::time_point t0_;
  Clock::time_point sent_;
  Clock::time_point last_token_;
  std::atomic<long long>* token_counter_;
  std::function<void(Clock::time_point)> on_done_;
  int counted_tokens_ = 0;
  int usage_completion_tokens_ = 0;
  RequestRecord record_;
};

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_RECORDER_H_

#ifndef MOESERVE_SERVER_ENGINE_REQUEST_STREAM_H_
#define MOESERVE_SERVER_ENGINE_REQUEST_STREAM_H_

// RequestStream: the per-request channel from the engine thread to a reader. The engine Push()es
// deltas; a reader either polls Next() (one sample's deltas pushed since the last call, merged
// into one) or has the engine call a callback with each delta. A request with n samples
// interleaves their deltas, told apart by RequestOutput::index; the stream ends with the delta
// that has request_finished.
//
// Thread-safe: one writer (the engine thread) and any number of readers.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/request_output.h"

namespace moeserve {

class RequestStream {
 public:
  // Called on the engine thread with each delta, in order; it must not block. It may call
  // Engine::Abort() but no other Engine method.
  using Callback = std::function<void(const RequestOutput&)>;

  // A null callback queues the deltas for Next().
  explicit RequestStream(uint64_t request_id, Callback callback = nullptr);

  RequestStream(const RequestStream&) = delete;
  RequestStream& operator=(const RequestStream&) = delete;

  uint64_t request_id() const { return request_id_; }

  // Waits up to `timeout` for output, then returns what one sample (the lowest index with any)
  // pushed since it was last returned, merged into one delta; nullopt on timeout, or once the
  // final delta has been returned. request_finished is set on the delta returned last.
  // Not for streams with a callback.
  std::optional<RequestOutput> Next(absl::Duration timeout = absl::InfiniteDuration());

  // Reads until the final delta and returns each sample's output merged, by index (tests,
  // non-streaming calls). WaitForCompletion: the same for a request with one sample.
  std::vector<RequestOutput> WaitForCompletions();
  RequestOutput WaitForCompletion();

  // True once the final delta has been pushed.
  bool finished() const;

  // Engine side. REQUIRES: nothing pushed after a delta with finished == true.
  void Push(RequestOutput delta);

 private:
  bool ReadableLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !pending_.empty() || drained_; }

  const uint64_t request_id_;
  const Callback callback_;
  mutable absl::Mutex mu_;
  std::map<int32_t, RequestOutput> pending_ ABSL_GUARDED_BY(mu_);  // by sample index
  bool finished_ ABSL_GUARDED_BY(mu_) = false;                     // the final delta was pushed
  bool drained_ ABSL_GUARDED_BY(mu_) = false;                      // ... and returned by Next()
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_ENGINE_REQUEST_STREAM_H_

#ifndef MOESERVE_SERVER_API_OPENAI_WORK_QUEUE_H_
#define MOESERVE_SERVER_API_OPENAI_WORK_QUEUE_H_

// WorkQueue: a few threads for the HTTP API's slow work (parsing request bodies, rendering chat
// templates, tokenizing prompts), so that the I/O threads never wait on it and a probe is answered
// at once whatever the load. Tasks run in FIFO order; at most max_pending wait, beyond which Post
// refuses (the caller answers 503).
//
// Thread-safe. The destructor runs what is queued and joins the threads.

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moeserve::api {

class WorkQueue {
 public:
  WorkQueue(int num_threads, int max_pending);
  ~WorkQueue();

  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `task`; false when max_pending tasks already wait.
  bool Post(std::function<void()> task);

 private:
  void Loop();

  const size_t max_pending_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_OPENAI_WORK_QUEUE_H_

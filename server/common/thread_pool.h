#ifndef MOESERVE_SERVER_COMMON_THREAD_POOL_H_
#define MOESERVE_SERVER_COMMON_THREAD_POOL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moeserve {

// A fixed set of worker threads for data-parallel loops (the CPU backend's ops).
//
// ParallelFor splits [0, n) into contiguous chunks and runs `fn(begin, end)` on the workers and the
// calling thread, returning when all chunks are done. It is meant to be called from one thread at a
// time (the engine thread); concurrent callers are serialised. Nested calls from inside `fn` run
// inline on the calling worker.
//
// Chunks are claimed one at a time, so a worker that is not running (a busy machine) leaves its
// share to the others: a call waits for the chunks that were claimed, never for an idle worker to
// wake up. A chunk is only claimed for the call that published it. Idle workers spin for a few tens
// of microseconds before they block, because a forward pass issues its ops back to back.
class ThreadPool {
 public:
  // num_threads <= 0 picks std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn over [0, n) in chunks of at least `min_chunk` items.
  void ParallelFor(int64_t n, int64_t min_chunk, const std::function<void(int64_t, int64_t)>& fn);

 private:
  using Fn = std::function<void(int64_t, int64_t)>;
  void WorkerLoop();
  // Claims and runs chunks of call `generation` until none is left (or another call started).
  void RunChunks(uint64_t generation, const Fn* fn);

  std::vector<std::thread> workers_;
  absl::Mutex call_mu_;  // serialises ParallelFor callers
  absl::Mutex mu_;
  const Fn* fn_ ABSL_GUARDED_BY(mu_) = nullptr;
  int64_t n_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t chunk_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0;  // items of finished chunks
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Mirrors of generation_ and done_ (written under mu_), read without the lock while spinning.
  std::atomic<uint64_t> published_{0};
  std::atomic<int64_t> done_mirror_{0};
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_COMMON_THREAD_POOL_H_

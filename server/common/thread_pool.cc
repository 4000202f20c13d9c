#include "server/common/thread_pool.h"

#include <algorithm>

namespace moeserve {
namespace {
thread_local bool tls_in_pool = false;
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (auto& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t n, int64_t min_chunk,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  if (workers_.empty() || tls_in_pool || n <= min_chunk) {
    fn(0, n);
    return;
  }
  absl::MutexLock call_lock(&call_mu_);
  const int64_t parts = std::min<int64_t>(num_threads() * 4, (n + min_chunk - 1) / min_chunk);
  const int64_t chunk = (n + parts - 1) / parts;
  {
    absl::MutexLock lock(&mu_);
    fn_ = &fn;
    n_ = n;
    chunk_ = chunk;
    next_ = 0;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  tls_in_pool = true;
  for (;;) {
    int64_t begin;
    {
      absl::MutexLock lock(&mu_);
      begin = next_;
      next_ += chunk;
    }
    if (begin >= n) break;
    fn(begin, std::min(n, begin + chunk));
  }
  tls_in_pool = false;
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(+[](int* p) { return *p == 0; }, &pending_));
  fn_ = nullptr;
}

void ThreadPool::WorkerLoop(int index) {
  tls_in_pool = true;
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t)>* fn;
    int64_t n, chunk;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || generation_ != seen; };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      seen = generation_;
      fn = fn_;
      n = n_;
      chunk = chunk_;
    }
    for (;;) {
      int64_t begin;
      {
        absl::MutexLock lock(&mu_);
        begin = next_;
        next_ += chunk;
      }
      if (begin >= n) break;
      (*fn)(begin, std::min(n, begin + chunk));
    }
    absl::MutexLock lock(&mu_);
    --pending_;
  }
}

}  // namespace moeserve

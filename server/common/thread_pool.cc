#include "server/common/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace moeserve {
namespace {

thread_local bool tls_in_pool = false;

// How long an idle worker (or a caller waiting for claimed chunks) polls before it blocks.
constexpr std::chrono::microseconds kSpin(20);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Polls `done()` for up to kSpin; true if it became true.
template <typename F>
bool SpinUntil(F done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      CpuRelax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (auto& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t n, int64_t min_chunk, const Fn& fn) {
  if (n <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  if (workers_.empty() || tls_in_pool || n <= min_chunk) {
    fn(0, n);
    return;
  }
  absl::MutexLock call_lock(&call_mu_);
  const int64_t parts = std::min<int64_t>(num_threads() * 4, (n + min_chunk - 1) / min_chunk);
  uint64_t generation;
  {
    absl::MutexLock lock(&mu_);
    fn_ = &fn;
    n_ = n;
    chunk_ = (n + parts - 1) / parts;
    next_ = 0;
    done_ = 0;
    done_mirror_.store(0, std::memory_order_relaxed);
    generation = ++generation_;
    published_.store(generation, std::memory_order_release);
  }
  tls_in_pool = true;
  RunChunks(generation, &fn);
  tls_in_pool = false;
  // Every chunk is claimed; wait for those still running elsewhere.
  SpinUntil([&] { return done_mirror_.load(std::memory_order_acquire) == n; });
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](ThreadPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return p->done_ == p->n_; }, this));
  fn_ = nullptr;
}

void ThreadPool::RunChunks(uint64_t generation, const Fn* fn) {
  for (;;) {
    int64_t begin, end;
    {
      absl::MutexLock lock(&mu_);
      if (generation_ != generation || next_ >= n_) return;
      begin = next_;
      end = std::min(n_, begin + chunk_);
      next_ = end;
    }
    (*fn)(begin, end);
    absl::MutexLock lock(&mu_);
    done_ += end - begin;
    done_mirror_.store(done_, std::memory_order_release);
  }
}

void ThreadPool::WorkerLoop() {
  tls_in_pool = true;
  uint64_t seen = 0;
  for (;;) {
    SpinUntil([&] { return published_.load(std::memory_order_acquire) != seen; });
    const Fn* fn;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || generation_ != seen; };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      seen = generation_;
      fn = fn_;
    }
    RunChunks(seen, fn);
  }
}

}  // namespace moeserve

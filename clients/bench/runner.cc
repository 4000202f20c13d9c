#include "clients/bench/runner.h"

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <thread>

#include "clients/bench/arrivals.h"
#include "clients/bench/recorder.h"

namespace moeserve::bench {

namespace {
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
Clock::duration FromSeconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}
}  // namespace

// Shared by the dispatcher, the monitor and the requests' completion callbacks.
struct Runner::State {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;              // guarded by mu
  int finished = 0;               // guarded by mu (measured requests only)
  bool stopping = false;          // guarded by mu
  Clock::time_point last_done;    // guarded by mu
  std::vector<StreamCall*> open;  // guarded by mu: started calls (may have finished)
  std::atomic<long long> tokens{0};
};

// One request: its measurements and its call. Owned by Run(), which outlives both.
struct Runner::Request {
  std::unique_ptr<RequestRecorder> recorder;
  std::unique_ptr<StreamCall> call;
};

Runner::Runner(std::unique_ptr<StreamClient> client) : client_(std::move(client)), state_(std::make_shared<State>()) {}

Runner::~Runner() = default;

void Runner::Stop() {
  std::vector<StreamCall*> open;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
    open = state_->open;
    state_->cv.notify_all();
  }
  for (StreamCall* call : open) call->Cancel();  // a no-op for finished calls
}

namespace {

void DrawProgress(int done, int target, int in_flight, double elapsed, double duration, long long tokens) {
  constexpr int kWidth = 30;
  double fraction = target > 0 ? static_cast<double>(done) / target : (duration > 0 ? elapsed / duration : 0.0);
  fraction = std::clamp(fraction, 0.0, 1.0);
  int filled = static_cast<int>(fraction * kWidth);
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  char count[64];
  if (target > 0) {
    std::snprintf(count, sizeof(count), "%d/%d", done, target);
  } else {
    std::snprintf(count, sizeof(count), "%d done", done);
  }
  std::fprintf(stderr, "\r[%s] %s  in flight %d  %.1f s  %.0f tok/s   ", bar.c_str(), count, in_flight, elapsed,
               elapsed > 0 ? tokens / elapsed : 0.0);
  std::fflush(stderr);
}

}  // namespace

RunResult Runner::Run(const std::vector<BenchPrompt>& prompts, const RunOptions& o) {
  State& st = *state_;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    st.in_flight = 0;
    st.finished = 0;
    st.stopping = false;
    st.open.clear();
  }
  st.tokens = 0;
  std::vector<std::unique_ptr<Request>> requests;
  size_t next_prompt = 0;

  // Waits for a free slot under the concurrency cap; false when stopping.
  auto acquire = [&](std::unique_lock<std::mutex>& lock) {
    st.cv.wait(lock, [&] { return st.stopping || o.max_concurrency <= 0 || st.in_flight < o.max_concurrency; });
    return !st.stopping;
  };
  auto launch = [&](Clock::time_point t0, int index, double scheduled_s, bool measured) {
    const BenchPrompt& p = prompts[next_prompt++ % prompts.size()];
    auto request = std::make_unique<Request>();
    request->recorder =
        std::make_unique<RequestRecorder>(t0, index, scheduled_s, &st.tokens, [&st, measured](Clock::time_point at) {
          std::lock_guard<std::mutex> lock(st.mu);
          --st.in_flight;
          if (measured) ++st.finished;
          st.last_done = std::max(st.last_done, at);
          st.cv.notify_all();
        });
    {
      std::lock_guard<std::mutex> lock(st.mu);
      ++st.in_flight;
    }
    RequestSpec spec;
    spec.request_id = "bench-" + std::to_string(index);
    spec.temperature = o.temperature;
    spec.ignore_eos = o.ignore_eos;
    spec.cache_salt = o.cache_salt;
    spec.timeout_s = o.request_timeout_s;
    request->recorder->MarkSent(p.input_tokens);
    request->call = client_->Start(p, spec, request->recorder.get());
    bool cancel = false;
    {
      std::lock_guard<std::mutex> lock(st.mu);
      st.open.push_back(request->call.get());
      cancel = st.stopping;  // Stop() ran while this call was being started
    }
    if (cancel) request->call->Cancel();
    requests.push_back(std::move(request));
  };

  // The monitor: progress bar and interrupt polling.
  std::atomic<bool> monitor_done{false};
  Clock::time_point t0 = Clock::now();
  std::atomic<int64_t> t0_ns{t0.time_since_epoch().count()};
  std::thread monitor([&] {
    int ticks = 0;
    while (!monitor_done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (o.interrupt != nullptr && o.interrupt->load()) Stop();
      if (o.progress && ++ticks % 4 == 0) {
        int done, in_flight;
        {
          std::lock_guard<std::mutex> lock(st.mu);
          done = st.finished;
          in_flight = st.in_flight;
        }
        Clock::time_point start{Clock::duration(t0_ns.load())};
        DrawProgress(done, o.num_requests, in_flight, Seconds(Clock::now() - start), o.duration_s, st.tokens.load());
      }
    }
  });

  // Warmup: sent under the same concurrency cap, awaited, not recorded.
  for (int i = 0; i < o.warmup; ++i) {
    std::unique_lock<std::mutex> lock(st.mu);
    if (!acquire(lock)) break;
    lock.unlock();
    launch(Clock::now(), -1 - i, 0, /*measured=*/false);
  }
  {
    std::unique_lock<std::mutex> lock(st.mu);
    st.cv.wait(lock, [&] { return st.in_flight == 0; });
  }
  size_t warmup_requests = requests.size();
  st.tokens = 0;

  t0 = Clock::now();
  t0_ns = t0.time_since_epoch().count();
  {
    std::lock_guard<std::mutex> lock(st.mu);
    st.last_done = t0;
  }
  ArrivalGenerator arrivals(o.request_rate, o.burstiness, o.seed);
  double scheduled_s = 0;
  for (int i = 0; o.num_requests <= 0 || i < o.num_requests; ++i) {
    if (i > 0) scheduled_s += arrivals.NextGap();
    if (o.duration_s > 0 && scheduled_s >= o.duration_s) break;
    std::unique_lock<std::mutex> lock(st.mu);
    if (st.cv.wait_until(lock, t0 + FromSeconds(scheduled_s), [&] { return st.stopping; })) break;
    if (!acquire(lock)) break;
    lock.unlock();
    launch(t0, i, scheduled_s, /*measured=*/true);
  }
  {
    std::unique_lock<std::mutex> lock(st.mu);
    bool drained = true;
    if (o.drain_timeout_s > 0) {
      drained = st.cv.wait_for(lock, FromSeconds(o.drain_timeout_s), [&] { return st.in_flight == 0; });
    }
    if (!drained) {
      lock.unlock();
      Stop();
      lock.lock();
    }
    st.cv.wait(lock, [&] { return st.in_flight == 0; });
  }
  monitor_done = true;
  monitor.join();
  if (o.progress) std::fprintf(stderr, "\n");

  RunResult result;
  result.start = t0;
  Clock::time_point last_done;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    last_done = st.last_done;
    st.open.clear();
  }
  for (size_t i = warmup_requests; i < requests.size(); ++i) {
    result.records.push_back(std::move(requests[i]->recorder->record()));
  }
  double first_sent = result.records.empty() ? 0.0 : result.records.front().sent_s;
  result.duration_s = std::max(0.0, Seconds(last_done - t0) - first_sent);
  return result;
}

}  // namespace moeserve::bench

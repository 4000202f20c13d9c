#include "clients/bench/runner.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <thread>
#include <unistd.h>

#include "clients/bench/arrivals.h"
#include "clients/common/channel.h"

namespace moeserve::bench {

namespace v1 = moeserve::v1;
using Clock = std::chrono::steady_clock;

namespace {
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
Clock::duration FromSeconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}
}  // namespace

// Shared by the dispatcher, the monitor and the streams' callbacks.
struct Runner::State {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;        // guarded by mu
  int finished = 0;         // guarded by mu (measured requests only)
  bool stopping = false;    // guarded by mu
  Clock::time_point last_done;  // guarded by mu
  std::vector<Stream*> open;    // guarded by mu: started streams (may have finished)
  std::atomic<long long> tokens{0};
};

// One Generate call. Owned by Run(), which outlives it; callbacks only touch the State and the
// stream's own record.
class Runner::Stream : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  Stream(State* state, Clock::time_point t0, int index, double scheduled_s)
      : state_(state), t0_(t0) {
    record_.index = index;
    record_.scheduled_s = scheduled_s;
  }

  void Start(v1::Inference::Stub* stub, const v1::GenerateRequest& request, const std::string& bearer,
             double timeout_s, int client_input_tokens) {
    request_ = request;
    record_.input_tokens = client_input_tokens;
    if (!bearer.empty()) context_.AddMetadata("authorization", "Bearer " + bearer);
    sent_ = Clock::now();
    if (timeout_s > 0) {
      context_.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6)));
    }
    record_.sent_s = Seconds(sent_ - t0_);
    stub->async()->Generate(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    Clock::time_point now = Clock::now();
    int n = response_.token_ids_size();
    if (n > 0) {
      if (record_.output_tokens == 0) {
        record_.ttft_s = Seconds(now - sent_);
      } else {
        record_.itls_s.push_back(Seconds(now - last_));
      }
      last_ = now;
      record_.output_tokens += n;
      state_->tokens.fetch_add(n, std::memory_order_relaxed);
    }
    if (response_.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      record_.finish_reason = v1::FinishReason_Name(response_.finish_reason());
      const std::string prefix = "FINISH_REASON_";
      if (record_.finish_reason.rfind(prefix, 0) == 0) record_.finish_reason.erase(0, prefix.size());
    }
    if (response_.has_usage()) {
      if (response_.usage().prompt_tokens() > 0) record_.input_tokens = response_.usage().prompt_tokens();
      record_.cached_tokens = response_.usage().cached_tokens();
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    Clock::time_point now = Clock::now();
    record_.e2e_s = Seconds(now - sent_);
    record_.status = clients::CodeName(status.error_code());
    if (!status.ok()) record_.error = status.error_message();
    std::lock_guard<std::mutex> lock(state_->mu);
    --state_->in_flight;
    if (measured_) ++state_->finished;
    state_->last_done = std::max(state_->last_done, now);
    state_->cv.notify_all();
  }

  void Cancel() { context_.TryCancel(); }
  void set_measured(bool measured) { measured_ = measured; }
  RequestRecord& record() { return record_; }

 private:
  State* state_;
  Clock::time_point t0_;
  Clock::time_point sent_;
  Clock::time_point last_;
  bool measured_ = true;
  grpc::ClientContext context_;
  v1::GenerateRequest request_;
  v1::GenerateResponse response_;
  RequestRecord record_;
};

Runner::Runner(std::vector<std::shared_ptr<grpc::Channel>> channels, std::string bearer)
    : bearer_(std::move(bearer)), state_(std::make_shared<State>()) {
  for (const auto& channel : channels) stubs_.push_back(v1::Inference::NewStub(channel));
}

Runner::~Runner() = default;

void Runner::Stop() {
  std::vector<Stream*> open;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
    open = state_->open;
    state_->cv.notify_all();
  }
  for (Stream* s : open) s->Cancel();  // a no-op for finished calls
}

namespace {

v1::GenerateRequest MakeRequest(const BenchPrompt& p, const RunOptions& o, int index) {
  v1::GenerateRequest request;
  if (!p.token_ids.empty()) {
    request.mutable_token_ids()->mutable_ids()->Add(p.token_ids.begin(), p.token_ids.end());
  } else {
    request.set_text(p.text);
  }
  v1::SamplingParams* s = request.mutable_sampling();
  s->set_max_tokens(p.output_tokens);
  s->set_temperature(o.temperature);
  s->set_ignore_eos(o.ignore_eos);
  request.set_cache_salt(o.cache_salt);
  request.set_request_id("bench-" + std::to_string(index));
  return request;
}

void DrawProgress(int done, int target, int in_flight, double elapsed, double duration,
                  long long tokens) {
  constexpr int kWidth = 30;
  double fraction = target > 0 ? static_cast<double>(done) / target
                               : (duration > 0 ? elapsed / duration : 0.0);
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
  std::fprintf(stderr, "\r[%s] %s  in flight %d  %.1f s  %.0f tok/s   ", bar.c_str(), count,
               in_flight, elapsed, elapsed > 0 ? tokens / elapsed : 0.0);
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
  std::vector<std::unique_ptr<Stream>> streams;
  size_t next_prompt = 0;
  int next_stub = 0;

  // Waits for a free slot under the concurrency cap; false when stopping.
  auto acquire = [&](std::unique_lock<std::mutex>& lock) {
    st.cv.wait(lock, [&] {
      return st.stopping || o.max_concurrency <= 0 || st.in_flight < o.max_concurrency;
    });
    return !st.stopping;
  };
  auto launch = [&](Clock::time_point t0, int index, double scheduled_s, bool measured) {
    const BenchPrompt& p = prompts[next_prompt++ % prompts.size()];
    auto stream = std::make_unique<Stream>(&st, t0, index, scheduled_s);
    stream->set_measured(measured);
    Stream* raw = stream.get();
    streams.push_back(std::move(stream));
    {
      std::lock_guard<std::mutex> lock(st.mu);
      ++st.in_flight;
      st.open.push_back(raw);
    }
    raw->Start(stubs_[next_stub++ % stubs_.size()].get(), MakeRequest(p, o, index), bearer_,
               o.request_timeout_s, p.input_tokens);
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
        DrawProgress(done, o.num_requests, in_flight, Seconds(Clock::now() - start), o.duration_s,
                     st.tokens.load());
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
  size_t warmup_streams = streams.size();
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
  for (size_t i = warmup_streams; i < streams.size(); ++i) {
    result.records.push_back(std::move(streams[i]->record()));
  }
  double first_sent = result.records.empty() ? 0.0 : result.records.front().sent_s;
  result.duration_s = std::max(0.0, Seconds(last_done - t0) - first_sent);
  return result;
}

}  // namespace moeserve::bench

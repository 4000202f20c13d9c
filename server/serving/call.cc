#include "server/serving/call.h"

#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/engine/engine.h"

namespace moeserve::serving {

struct Call::Channel {
  std::shared_ptr<OutputObserver> observer;
  std::function<void()> on_output;
  std::map<int32_t, absl::Time> last_token_time;  // by sample index; engine thread only

  absl::Mutex mu;
  std::map<int32_t, RequestOutput> pending ABSL_GUARDED_BY(mu);  // by sample index
  bool engine_finished ABSL_GUARDED_BY(mu) = false;              // the request's last delta was pushed
  RequestUsage usage ABSL_GUARDED_BY(mu);                        // the engine's, as of the last delta
  RequestTimings timings ABSL_GUARDED_BY(mu);

  bool Readable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !pending.empty(); }

  // Engine thread: one delta per sample per step, so inter-token gaps are measured here.
  void Push(const RequestOutput& delta) {
    if (observer != nullptr) {
      if (!delta.token_ids.empty()) {
        auto [last, fresh] = last_token_time.try_emplace(delta.index, delta.time);
        if (!fresh) {
          observer->ObserveInterToken(absl::ToDoubleSeconds(delta.time - last->second),
                                      static_cast<int>(delta.token_ids.size()));
          last->second = delta.time;
        }
      }
      if (delta.request_finished) observer->ObserveFinished(delta);
    }
    {
      absl::MutexLock lock(&mu);
      auto it = pending.find(delta.index);
      if (it != pending.end()) {
        it->second.Merge(delta);
      } else {
        pending.emplace(delta.index, delta);
      }
      usage = delta.usage;
      timings = delta.timings;
      if (delta.request_finished) engine_finished = true;
    }
    if (on_output) on_output();
  }
};

std::shared_ptr<Call::Channel> MakeCallChannel(std::shared_ptr<OutputObserver> observer,
                                               std::function<void()> on_output) {
  auto channel = std::make_shared<Call::Channel>();
  channel->observer = std::move(observer);
  channel->on_output = std::move(on_output);
  return channel;
}

std::function<void(const RequestOutput&)> ChannelCallback(std::shared_ptr<Call::Channel> channel) {
  return [channel = std::move(channel)](const RequestOutput& delta) { channel->Push(delta); };
}

Call::Call(Engine* engine, std::shared_ptr<Channel> channel, uint64_t engine_id, BuiltPrompt prompt,
           std::vector<std::unique_ptr<SampleOutputProcessor>> samples)
    : engine_(engine),
      channel_(std::move(channel)),
      engine_id_(engine_id),
      prompt_(std::move(prompt)),
      samples_(std::move(samples)) {}

Call::~Call() {
  bool engine_finished = false;
  {
    absl::MutexLock lock(&channel_->mu);
    engine_finished = channel_->engine_finished;
  }
  if (!engine_finished) engine_->Abort(engine_id_);
}

void Call::Abort() { engine_->Abort(engine_id_); }

bool Call::WaitForEngine(absl::Duration timeout) {
  absl::MutexLock lock(&channel_->mu);
  return channel_->mu.AwaitWithTimeout(absl::Condition(&channel_->engine_finished), timeout);
}

std::optional<Output> Call::Next(absl::Duration timeout) {
  if (returned_final_) return std::nullopt;
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    RequestOutput delta;
    RequestUsage usage;
    RequestTimings timings;
    {
      absl::MutexLock lock(&channel_->mu);
      channel_->mu.AwaitWithDeadline(absl::Condition(channel_.get(), &Channel::Readable), deadline);
      if (channel_->pending.empty()) return std::nullopt;
      delta = std::move(channel_->pending.begin()->second);
      channel_->pending.erase(channel_->pending.begin());
      usage = channel_->usage;
      timings = channel_->timings;
    }
    SampleOutputProcessor& sample = *samples_.at(delta.index);
    if (sample.finished()) continue;  // tokens past a stop string
    Output out = sample.Process(delta);
    if (sample.stopped_early()) engine_->StopSample(engine_id_, delta.index);
    if (out.finished) ++num_finished_;
    if (!out.finished && out.token_ids.empty() && out.text.empty() && out.prompt_logprobs.empty()) {
      continue;
    }
    out.usage = usage;
    out.usage.completion_tokens = 0;
    for (const auto& s : samples_) out.usage.completion_tokens += s->num_tokens();
    out.timings = timings;
    if (num_finished_ == num_samples()) {
      out.request_finished = returned_final_ = true;
      // Ended by a stop string before the engine knew: it ended when that token arrived.
      if (out.timings.finish == absl::InfinitePast()) out.timings.finish = delta.time;
    }
    return out;
  }
}

}  // namespace moeserve::serving

#include "server/engine/request_stream.h"

#include <utility>

#include "server/common/logging.h"

namespace moeserve {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kError: return "error";
  }
  return "";
}

void RequestOutput::Merge(RequestOutput next) {
  token_ids.insert(token_ids.end(), next.token_ids.begin(), next.token_ids.end());
  for (TokenLogprobs& lp : next.logprobs) logprobs.push_back(std::move(lp));
  for (TokenLogprobs& lp : next.prompt_logprobs) prompt_logprobs.push_back(std::move(lp));
  time = next.time;
  finished = next.finished;
  request_finished = next.request_finished;
  finish_reason = next.finish_reason;
  error = std::move(next.error);
  stop_token_id = next.stop_token_id;
  usage = next.usage;
  timings = next.timings;
}

RequestStream::RequestStream(uint64_t request_id, Callback callback)
    : request_id_(request_id), callback_(std::move(callback)) {}

void RequestStream::Push(RequestOutput delta) {
  const bool final = delta.request_finished;
  if (callback_) {
    {
      absl::MutexLock lock(&mu_);
      MS_CHECK(!finished_) << "output pushed after the final delta of request " << request_id_;
      finished_ = final;
    }
    callback_(delta);
    return;
  }
  absl::MutexLock lock(&mu_);
  MS_CHECK(!finished_) << "output pushed after the final delta of request " << request_id_;
  finished_ = final;
  auto it = pending_.find(delta.index);
  if (it != pending_.end()) {
    it->second.Merge(std::move(delta));
  } else {
    pending_.emplace(delta.index, std::move(delta));
  }
}

std::optional<RequestOutput> RequestStream::Next(absl::Duration timeout) {
  MS_CHECK(!callback_) << "Next() on a stream with a callback";
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(this, &RequestStream::ReadableLocked), timeout);
  if (pending_.empty()) return std::nullopt;
  std::optional<RequestOutput> out = std::move(pending_.begin()->second);
  pending_.erase(pending_.begin());
  // The request's final delta is returned last, after every other sample's pending output.
  if (finished_ && pending_.empty()) {
    drained_ = true;
    out->request_finished = true;
  } else {
    out->request_finished = false;
  }
  return out;
}

std::vector<RequestOutput> RequestStream::WaitForCompletions() {
  std::vector<RequestOutput> all;
  while (std::optional<RequestOutput> delta = Next()) {
    const size_t index = static_cast<size_t>(delta->index);
    if (all.size() <= index) all.resize(index + 1);
    all[index].request_id = request_id_;
    all[index].index = delta->index;
    const bool last = delta->request_finished;
    all[index].Merge(std::move(*delta));
    if (last) break;
  }
  return all;
}

RequestOutput RequestStream::WaitForCompletion() {
  std::vector<RequestOutput> all = WaitForCompletions();
  MS_CHECK(all.size() <= 1) << "WaitForCompletion on request " << request_id_ << " with " << all.size()
                            << " samples; use WaitForCompletions";
  if (all.empty()) {
    RequestOutput none;
    none.request_id = request_id_;
    return none;
  }
  return std::move(all[0]);
}

bool RequestStream::finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

}  // namespace moeserve

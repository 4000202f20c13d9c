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
  text += next.text;
  for (TokenLogprobs& lp : next.logprobs) logprobs.push_back(std::move(lp));
  time = next.time;
  finished = next.finished;
  finish_reason = next.finish_reason;
  error = std::move(next.error);
  stop_string = std::move(next.stop_string);
  stop_token_id = next.stop_token_id;
  usage = next.usage;
  timings = next.timings;
}

RequestStream::RequestStream(uint64_t request_id, Callback callback)
    : request_id_(request_id), callback_(std::move(callback)) {}

void RequestStream::Push(RequestOutput delta) {
  const bool final = delta.finished;
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
  if (pending_.has_value()) {
    pending_->Merge(std::move(delta));
  } else {
    pending_ = std::move(delta);
  }
}

std::optional<RequestOutput> RequestStream::Next(absl::Duration timeout) {
  MS_CHECK(!callback_) << "Next() on a stream with a callback";
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(this, &RequestStream::ReadableLocked), timeout);
  if (!pending_.has_value()) return std::nullopt;
  std::optional<RequestOutput> out = std::move(pending_);
  pending_.reset();
  if (out->finished) drained_ = true;
  return out;
}

RequestOutput RequestStream::WaitForCompletion() {
  RequestOutput all;
  all.request_id = request_id_;
  while (std::optional<RequestOutput> delta = Next()) {
    all.Merge(std::move(*delta));
    if (all.finished) break;
  }
  return all;
}

bool RequestStream::finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

}  // namespace moeserve

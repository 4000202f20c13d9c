#include "clients/bench/recorder.h"

namespace moeserve::bench {
namespace {
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

RequestRecorder::RequestRecorder(Clock::time_point t0, int index, double scheduled_s,
                                 std::atomic<long long>* token_counter, std::function<void(Clock::time_point)> on_done)
    : t0_(t0), token_counter_(token_counter), on_done_(std::move(on_done)) {
  record_.index = index;
  record_.scheduled_s = scheduled_s;
}

void RequestRecorder::MarkSent(int client_input_tokens) {
  sent_ = Clock::now();
  record_.sent_s = Seconds(sent_ - t0_);
  record_.input_tokens = client_input_tokens;
}

void RequestRecorder::OnTokens(int tokens, Clock::time_point at) {
  if (tokens <= 0) return;
  if (counted_tokens_ == 0) {
    record_.ttft_s = Seconds(at - sent_);
  } else {
    record_.itls_s.push_back(Seconds(at - last_token_));
  }
  last_token_ = at;
  counted_tokens_ += tokens;
  if (token_counter_ != nullptr) token_counter_->fetch_add(tokens, std::memory_order_relaxed);
}

void RequestRecorder::OnFinishReason(const std::string& reason) { record_.finish_reason = reason; }

void RequestRecorder::OnUsage(int prompt_tokens, int completion_tokens, int cached_tokens) {
  if (prompt_tokens > 0) record_.input_tokens = prompt_tokens;
  if (completion_tokens > 0) usage_completion_tokens_ = completion_tokens;
  record_.cached_tokens = cached_tokens;
}

void RequestRecorder::OnDone(const std::string& status, const std::string& error, Clock::time_point at) {
  record_.e2e_s = Seconds(at - sent_);
  // The server's count when it reported one (an HTTP chunk may carry several tokens), else what
  // arrived (a stream that failed part-way keeps the tokens it delivered).
  record_.output_tokens = usage_completion_tokens_ > 0 ? usage_completion_tokens_ : counted_tokens_;
  record_.status = status;
  if (status != "OK") record_.error = error;
  on_done_(at);
}

}  // namespace moeserve::bench

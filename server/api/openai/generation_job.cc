#include "server/api/openai/generation_job.h"

#include <utility>

#include "server/api/openai/openai_errors.h"

namespace moeserve::api::openai {

GenerationJob::GenerationJob(std::shared_ptr<HttpExchange> exchange, JobOptions options)
    : exchange_(std::move(exchange)), options_(std::move(options)) {}

GenerationJob::~GenerationJob() = default;

std::function<void()> ExchangeWaker(const std::shared_ptr<HttpExchange>& exchange) {
  return [weak = std::weak_ptr<HttpExchange>(exchange)] {
    if (std::shared_ptr<HttpExchange> exchange = weak.lock()) exchange->Wake();
  };
}

void GenerationJob::Start(std::vector<std::unique_ptr<serving::Call>> calls) {
  calls_ = std::move(calls);
  if (options_.stream) {
    exchange_->StartStream(200, "text/event-stream", {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}});
    std::string sse;
    OnStart(&sse);
    if (!sse.empty()) exchange_->Write(std::move(sse));
  }
  // Runs Pump once (the output that came before) and on every wake from then on.
  std::shared_ptr<GenerationJob> self = shared_from_this();
  exchange_->SetCallbacks([self] { self->Pump(); }, [self] { self->Idle(); }, [self] { self->Cancel(); });
}

Json GenerationJob::ChunkJson(Json choices) const {
  return Json{{"id", options_.id},
              {"object", ChunkObject()},
              {"created", options_.created},
              {"model", options_.model},
              {"choices", std::move(choices)}};
}

void GenerationJob::Pump() {
  if (done_) return;
  std::string sse;
  bool all_finished = true;
  for (size_t p = 0; p < calls_.size(); ++p) {
    serving::Call& call = *calls_[p];
    while (!call.finished()) {
      std::optional<serving::Output> out = call.Next(absl::ZeroDuration());
      if (!out.has_value()) break;
      if (out->finished && (out->finish_reason == FinishReason::kError || out->finish_reason == FinishReason::kAbort)) {
        if (options_.stream && !sse.empty()) exchange_->Write(std::move(sse));
        return Fail(out->finish_reason == FinishReason::kAbort
                        ? absl::UnavailableError("the server stopped the request before it finished (shutdown)")
                        : (out->error.ok() ? absl::InternalError("the engine failed") : out->error));
      }
      OnOutput(static_cast<int>(p), static_cast<int>(p) * options_.n + out->index, call, *out, &sse);
      if (out->request_finished) {
        prompt_tokens_ += out->usage.prompt_tokens;
        completion_tokens_ += out->usage.completion_tokens;
        cached_tokens_ += out->usage.cached_tokens;
      }
    }
    all_finished = all_finished && call.finished();
  }
  if (options_.stream && !sse.empty()) exchange_->Write(std::move(sse));
  if (all_finished) Finish();
}

void GenerationJob::Finish() {
  done_ = true;
  calls_.clear();
  Json usage = UsageJson(prompt_tokens_, completion_tokens_, cached_tokens_);
  if (!options_.stream) {
    exchange_->Respond(
        {.status = 200, .body = WholeResponse(std::move(usage)).dump(-1, ' ', false, Json::error_handler_t::replace)});
    return;
  }
  std::string tail;
  if (options_.include_usage) {
    Json chunk = ChunkJson(Json::array());
    chunk["usage"] = std::move(usage);
    tail += SseEvent(chunk);
  }
  tail += kSseDone;
  exchange_->Write(std::move(tail));
  exchange_->End();
}

void GenerationJob::Fail(const absl::Status& status) {
  done_ = true;
  calls_.clear();  // aborts what is left
  if (!options_.stream) {
    exchange_->Respond(ErrorResponse(status));
    return;
  }
  const HttpResponse error = ErrorResponse(status);
  exchange_->Write("data: " + error.body + "\n\n" + kSseDone);
  exchange_->End();
}

void GenerationJob::Idle() {
  if (!done_ && options_.stream) exchange_->Write(kSseKeepAlive);
}

void GenerationJob::Cancel() {
  done_ = true;
  calls_.clear();  // dropping a Call aborts its engine request
}

}  // namespace moeserve::api::openai

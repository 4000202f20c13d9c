#include "server/api/openai/completion_job.h"

#include <utility>

namespace moeserve::api::openai {

CompletionJob::CompletionJob(std::shared_ptr<HttpExchange> exchange, JobOptions options,
                             CompletionJobOptions completion)
    : GenerationJob(std::move(exchange), std::move(options)), completion_(std::move(completion)) {
  choices_.resize(completion_.prompt_texts.size() * static_cast<size_t>(this->options().n));
}

void CompletionJob::OnOutput(int prompt, int choice, const serving::Call& call, const serving::Output& out,
                             std::string* sse) {
  Choice& c = choices_.at(choice);
  std::string text;
  if (!c.started) {
    c.started = true;
    if (completion_.logprobs.has_value()) c.logprobs.emplace();
    if (completion_.echo) {
      text = completion_.prompt_texts.at(prompt);
      // The prompt's tokens and their logprobs (computed for sample 0; see the request parser).
      if (c.logprobs.has_value() && !call.prompt_token_ids().empty()) {
        c.logprobs->AppendUnscored(completion_.token_text(call.prompt_token_ids()[0]));
        for (const serving::OutputLogprobs& lp : out.prompt_logprobs) c.logprobs->Append(lp);
      }
    }
  }
  text += out.text;
  if (c.logprobs.has_value()) {
    for (const serving::OutputLogprobs& lp : out.logprobs) c.logprobs->Append(lp);
  }
  if (out.finished) {
    c.finish_reason = FinishReasonString(out.finish_reason, false);
    c.stop_reason = StopReason(out);
  }
  if (!options().stream) {
    c.text += text;
    return;
  }
  if (text.empty() && !out.finished && (!c.logprobs.has_value() || c.logprobs->empty())) return;
  Json entry{{"index", choice},
             {"text", std::move(text)},
             {"logprobs", c.logprobs.has_value() ? c.logprobs->Take() : Json()},
             {"finish_reason", out.finished ? Json(c.finish_reason) : Json()}};
  if (out.finished) entry["stop_reason"] = c.stop_reason;
  *sse += SseEvent(ChunkJson(Json::array({std::move(entry)})));
}

Json CompletionJob::WholeResponse(Json usage) {
  Json choices = Json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    choices.push_back({{"index", i},
                       {"text", std::move(c.text)},
                       {"logprobs", c.logprobs.has_value() ? c.logprobs->Take() : Json()},
                       {"finish_reason", c.finish_reason},
                       {"stop_reason", c.stop_reason}});
  }
  Json body{{"id", options().id},       {"object", "text_completion"},   {"created", options().created},
            {"model", options().model}, {"choices", std::move(choices)}, {"usage", std::move(usage)}};
  return body;
}

}  // namespace moeserve::api::openai

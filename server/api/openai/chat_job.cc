#include "server/api/openai/chat_job.h"

#include <utility>

namespace moeserve::api::openai {
namespace {

Json ToolCallJson(const parsers::ToolCall& call) {
  return Json{{"index", call.index},
              {"id", call.id},
              {"type", "function"},
              {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
}

}  // namespace

ChatJob::ChatJob(std::shared_ptr<HttpExchange> exchange, JobOptions options, ChatJobOptions chat)
    : GenerationJob(std::move(exchange), std::move(options)),
      chat_(std::move(chat)),
      choices_(static_cast<size_t>(this->options().n)) {}

void ChatJob::OnStart(std::string* sse) {
  Json choices = Json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    choices.push_back({{"index", i},
                       {"delta", {{"role", "assistant"}, {"content", ""}}},
                       {"logprobs", nullptr},
                       {"finish_reason", nullptr}});
  }
  *sse += SseEvent(ChunkJson(std::move(choices)));
}

void ChatJob::Take(Choice& c, parsers::ChatDelta d, Json* delta) {
  if (!d.reasoning.empty()) {
    if (delta != nullptr) (*delta)["reasoning_content"] = d.reasoning;
    c.reasoning += d.reasoning;
  }
  if (!d.content.empty()) {
    if (delta != nullptr) (*delta)["content"] = d.content;
    c.content += d.content;
  }
  for (const parsers::ToolCall& call : d.tool_calls) {
    if (!chat_.parallel_tool_calls && call.index > 0) continue;
    Json json = ToolCallJson(call);
    if (delta != nullptr) (*delta)["tool_calls"].push_back(json);
    c.tool_calls.push_back(std::move(json));
  }
}

void ChatJob::OnOutput(int prompt, int choice, const serving::Call& call, const serving::Output& out,
                       std::string* sse) {
  Choice& c = choices_.at(choice);
  if (!c.parser.has_value()) c.parser.emplace(chat_.parser, call.prompt_text());
  Json delta = Json::object();
  Json* d = options().stream ? &delta : nullptr;
  if (!out.text.empty()) Take(c, c.parser->Feed(out.text), d);
  if (out.finished) {
    Take(c, c.parser->Finish(), d);
    c.finish_reason = FinishReasonString(out.finish_reason, !c.tool_calls.empty());
  }
  const bool with_logprobs = chat_.logprobs && !out.logprobs.empty();
  Json logprobs = with_logprobs ? ChatLogprobContent(out.logprobs, chat_.top_logprobs) : Json();
  if (!options().stream) {
    if (with_logprobs) {
      for (Json& entry : logprobs) c.logprobs.push_back(std::move(entry));
    }
    return;
  }
  if (delta.empty() && !out.finished && !with_logprobs) return;
  Json entry{{"index", choice},
             {"delta", std::move(delta)},
             {"logprobs", with_logprobs ? Json{{"content", std::move(logprobs)}} : Json()},
             {"finish_reason", out.finished ? Json(c.finish_reason) : Json()}};
  if (out.finished) entry["stop_reason"] = StopReason(out);
  *sse += SseEvent(ChunkJson(Json::array({std::move(entry)})));
}

Json ChatJob::WholeResponse(Json usage) {
  Json choices = Json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    Json message{{"role", "assistant"},
                 {"content", c.content.empty() && !c.tool_calls.empty() ? Json() : Json(c.content)}};
    if (c.parser.has_value() && c.parser->saw_reasoning()) message["reasoning_content"] = c.reasoning;
    if (!c.tool_calls.empty()) message["tool_calls"] = std::move(c.tool_calls);
    choices.push_back({{"index", i},
                       {"message", std::move(message)},
                       {"logprobs", chat_.logprobs ? Json{{"content", std::move(c.logprobs)}} : Json()},
                       {"finish_reason", c.finish_reason}});
  }
  return Json{{"id", options().id},       {"object", "chat.completion"},   {"created", options().created},
              {"model", options().model}, {"choices", std::move(choices)}, {"usage", std::move(usage)}};
}

}  // namespace moeserve::api::openai

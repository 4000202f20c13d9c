#include "server/api/openai/openai_router.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/api/openai/chat_job.h"
#include "server/api/openai/completion_job.h"
#include "server/api/openai/generation_request.h"
#include "server/api/openai/openai_errors.h"
#include "server/api/openai/openai_params.h"
#include "server/api/openai/work_queue.h"
#include "server/serving/errors.h"

namespace moeserve::api {
namespace {

using openai::Json;

constexpr char kPrometheusType[] = "text/plain; version=0.0.4; charset=utf-8";

bool IsGet(const HttpRequest& r) { return r.method == "GET" || r.method == "HEAD"; }

HttpResponse JsonResponse(const Json& body) {
  return {.status = 200, .body = body.dump(-1, ' ', false, Json::error_handler_t::replace)};
}

void Reply(const std::shared_ptr<HttpExchange>& exchange, const absl::Status& status) {
  exchange->Respond(ErrorResponse(status));
}

}  // namespace

OpenAiRouter::OpenAiRouter(serving::Frontend* frontend, std::function<std::string()> metrics_text,
                           std::function<bool()> ready, OpenAiRouterOptions options)
    : frontend_(frontend),
      metrics_text_(std::move(metrics_text)),
      ready_(std::move(ready)),
      options_(std::move(options)),
      created_(absl::ToUnixSeconds(absl::Now())) {
  if (!options_.operator_only) {
    work_ = std::make_unique<WorkQueue>(options_.work_threads, options_.max_queued_work);
  }
}

OpenAiRouter::~OpenAiRouter() = default;

void OpenAiRouter::Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) {
  const std::string path = request.path;
  // Open routes: probes and scrapes carry no key.
  if (path == "/health") {
    if (!IsGet(request)) return exchange->Respond(ErrorResponse(405, "/health takes GET"));
    // Plain text, as probes and the gRPC health service read it.
    HttpResponse health{.status = 200, .content_type = "text/plain; charset=utf-8", .body = "SERVING\n"};
    if (!ready_()) {
      health.status = 503;
      health.body = "NOT_SERVING\n";
      health.headers.emplace_back("Retry-After", "1");
    }
    return exchange->Respond(std::move(health));
  }
  if (path == "/metrics") {
    if (!IsGet(request)) return exchange->Respond(ErrorResponse(405, "/metrics takes GET"));
    return exchange->Respond({.status = 200, .content_type = kPrometheusType, .body = metrics_text_()});
  }
  if (options_.operator_only) {
    return exchange->Respond(ErrorResponse(404, absl::StrCat("no route ", request.method, " ", path,
                                                             " on the operator port; it serves /health and /metrics")));
  }
  const std::string* authorization = request.Header("authorization");
  const std::string_view auth_value = authorization != nullptr ? std::string_view(*authorization) : "";
  const std::string_view* auth = authorization != nullptr ? &auth_value : nullptr;
  if (absl::Status s = frontend_->Authenticate(auth); !s.ok()) return Reply(exchange, s);

  using Route = void (OpenAiRouter::*)(const HttpRequest&, const std::shared_ptr<HttpExchange>&);
  Route route = nullptr;
  bool post = true;
  if (path == "/v1/completions") {
    route = &OpenAiRouter::Completions;
  } else if (path == "/v1/chat/completions") {
    route = &OpenAiRouter::ChatCompletions;
  } else if (path == "/tokenize") {
    route = &OpenAiRouter::Tokenize;
  } else if (path == "/detokenize") {
    route = &OpenAiRouter::Detokenize;
  } else if (path == "/v1/models" || absl::StartsWith(path, "/v1/models/")) {
    route = &OpenAiRouter::Models;
    post = false;
  } else {
    return exchange->Respond(ErrorResponse(404, absl::StrCat("no route ", request.method, " ", path), "", "not_found"));
  }
  if (post ? request.method != "POST" : !IsGet(request)) {
    return exchange->Respond(ErrorResponse(405, absl::StrCat(path, " takes ", post ? "POST" : "GET")));
  }
  if (!post) return (this->*route)(request, exchange);
  if (absl::Status s = frontend_->Admit(auth); !s.ok()) return Reply(exchange, s);  // draining
  auto shared = std::make_shared<HttpRequest>(std::move(request));
  if (!work_->Post([this, route, shared, exchange] { (this->*route)(*shared, exchange); })) {
    exchange->Respond(ErrorResponse(503, "the server is busy: too many requests are being read"));
  }
}

void OpenAiRouter::Models(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange) {
  const Json model{{"id", options_.model_id},
                   {"object", "model"},
                   {"created", created_},
                   {"owned_by", "moeserve"},
                   {"root", options_.model_id},
                   {"parent", nullptr},
                   {"max_model_len", frontend_->engine()->max_model_len()}};
  if (request.path == "/v1/models") {
    return exchange->Respond(JsonResponse({{"object", "list"}, {"data", Json::array({model})}}));
  }
  const std::string id = request.path.substr(std::string("/v1/models/").size());
  if (id != options_.model_id) {
    return exchange->Respond(ErrorResponse(
        404, absl::StrCat("the model '", id, "' does not exist; this server serves '", options_.model_id, "'"), "model",
        "model_not_found"));
  }
  exchange->Respond(JsonResponse(model));
}

void OpenAiRouter::Completions(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange) {
  absl::StatusOr<Json> body = openai::ParseBody(request.body);
  if (!body.ok()) return Reply(exchange, body.status());
  absl::StatusOr<openai::CompletionRequest> parsed = openai::ParseCompletionRequest(*body, options_.model_id);
  if (!parsed.ok()) return Reply(exchange, parsed.status());
  openai::CompletionRequest& r = *parsed;
  if (r.echo && r.logprobs.has_value() && !r.prompts.empty() && r.prompts[0].sampling.n > 1) {
    return Reply(exchange, serving::InvalidField("echo", ": with logprobs it needs n = 1"));
  }
  openai::JobOptions job_options{.stream = r.stream.stream,
                                 .include_usage = r.stream.include_usage,
                                 .n = r.prompts.empty() ? 1 : r.prompts[0].sampling.n,
                                 .id = "cmpl-" + openai::RandomId(),
                                 .created = absl::ToUnixSeconds(absl::Now()),
                                 .model = options_.model_id};
  std::vector<std::unique_ptr<serving::Call>> calls;
  std::vector<std::string> prompt_texts;
  for (serving::ServingRequest& prompt : r.prompts) {
    prompt.on_output = openai::ExchangeWaker(exchange);
    absl::StatusOr<std::unique_ptr<serving::Call>> call = frontend_->Submit(std::move(prompt));
    if (!call.ok()) return Reply(exchange, call.status());  // submitted ones abort when dropped
    std::string text = (*call)->prompt_text();
    if (r.echo && text.empty()) {
      absl::StatusOr<std::string> decoded =
          frontend_->Detokenize((*call)->prompt_token_ids(), /*skip_special_tokens=*/false, "prompt");
      text = decoded.ok() ? *std::move(decoded) : std::string();
    }
    prompt_texts.push_back(std::move(text));
    calls.push_back(*std::move(call));
  }
  auto job = std::make_shared<openai::CompletionJob>(
      exchange, job_options,
      openai::CompletionJobOptions{
          .echo = r.echo,
          .logprobs = r.logprobs,
          .prompt_texts = std::move(prompt_texts),
          .token_text = [frontend = frontend_](int32_t id) { return frontend->TokenText(id); }});
  job->Start(std::move(calls));
}

void OpenAiRouter::ChatCompletions(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange) {
  absl::StatusOr<Json> body = openai::ParseBody(request.body);
  if (!body.ok()) return Reply(exchange, body.status());
  absl::StatusOr<openai::ChatCompletionRequest> parsed = openai::ParseChatRequest(*body, options_.model_id);
  if (!parsed.ok()) return Reply(exchange, parsed.status());
  openai::ChatCompletionRequest& r = *parsed;
  if (r.tool_choice.forced()) {
    absl::StatusOr<structured::Constraint> constraint =
        openai::ForcedToolCallConstraint(r.tools, r.tool_choice, r.parallel_tool_calls, options_.tool_calls);
    if (!constraint.ok()) return Reply(exchange, constraint.status());
    r.request.sampling.constraint = *std::move(constraint);
    r.request.names.renamed.emplace_back("tool_calls", "tool_choice");
  } else if (r.tool_choice.mode == openai::ToolChoice::Mode::kAuto && !r.tools.is_null()) {
    absl::StatusOr<std::optional<structured::Constraint>> constraint =
        openai::AutoToolCallConstraint(r.tools, r.parallel_tool_calls, options_.tool_calls);
    if (!constraint.ok()) return Reply(exchange, constraint.status());
    if (constraint->has_value()) {
      r.request.sampling.constraint = **std::move(constraint);
      r.request.names.renamed.emplace_back("triggered", "tools");
    }
  }
  openai::ChatJobOptions chat{
      .parser = {.reasoning = options_.reasoning,
                 .tool_calls = r.parse_tool_calls ? options_.tool_calls : parsers::ToolCallFormat::kNone,
                 .tool_call_id_seed = std::hash<std::string>()(openai::RandomId())},
      .parallel_tool_calls = r.parallel_tool_calls,
      .logprobs = r.logprobs,
      .top_logprobs = r.top_logprobs};
  auto job = std::make_shared<openai::ChatJob>(exchange,
                                               openai::JobOptions{.stream = r.stream.stream,
                                                                  .include_usage = r.stream.include_usage,
                                                                  .n = r.request.sampling.n,
                                                                  .id = "chatcmpl-" + openai::RandomId(),
                                                                  .created = absl::ToUnixSeconds(absl::Now()),
                                                                  .model = options_.model_id},
                                               chat);
  r.request.on_output = openai::ExchangeWaker(exchange);
  absl::StatusOr<std::unique_ptr<serving::Call>> call = frontend_->Submit(std::move(r.request));
  if (!call.ok()) return Reply(exchange, call.status());
  std::vector<std::unique_ptr<serving::Call>> calls;
  calls.push_back(*std::move(call));
  job->Start(std::move(calls));
}

void OpenAiRouter::Tokenize(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange) {
  absl::StatusOr<Json> body = openai::ParseBody(request.body);
  if (!body.ok()) return Reply(exchange, body.status());
  const bool chat = body->contains("messages");
  if (absl::Status s = openai::CheckSupported(
          *body,
          chat ? std::vector<const char*>{"model", "messages", "add_generation_prompt", "add_special_tokens",
                                          "chat_template_kwargs", "tools", "return_token_strs"}
               : std::vector<const char*>{"model", "prompt", "add_special_tokens", "return_token_strs"},
          "/tokenize");
      !s.ok()) {
    return Reply(exchange, s);
  }
  if (absl::Status s = openai::CheckModel(*body, options_.model_id); !s.ok()) {
    return Reply(exchange, s);
  }
  absl::StatusOr<std::optional<bool>> add_special = openai::GetBool(*body, "add_special_tokens");
  if (!add_special.ok()) return Reply(exchange, add_special.status());
  absl::StatusOr<std::optional<bool>> strs = openai::GetBool(*body, "return_token_strs");
  if (!strs.ok()) return Reply(exchange, strs.status());
  serving::PromptInput input;
  serving::FieldNames names;
  if (chat) {
    // The chat template writes the special tokens itself.
    if (add_special->value_or(false)) {
      return Reply(exchange,
                   serving::InvalidField("add_special_tokens", ": with messages the chat template adds them"));
    }
    absl::StatusOr<serving::ChatPrompt> conversation = openai::ParseConversation(*body);
    if (!conversation.ok()) return Reply(exchange, conversation.status());
    input = *std::move(conversation);
    names.prompt = "messages";
  } else {
    absl::StatusOr<std::optional<std::string>> prompt = openai::GetString(*body, "prompt");
    if (!prompt.ok()) return Reply(exchange, prompt.status());
    if (!prompt->has_value()) {
      return Reply(exchange, serving::InvalidField("prompt", " (or messages) is required"));
    }
    input = serving::TextPrompt{**prompt, add_special->value_or(true)};
    names.prompt = "prompt";
  }
  absl::StatusOr<serving::BuiltPrompt> built = frontend_->Tokenize(input, names);
  if (!built.ok()) return Reply(exchange, built.status());
  Json token_strs;
  if (strs->value_or(false)) {
    token_strs = Json::array();
    const Tokenizer* tokenizer = frontend_->engine()->tokenizer();
    for (int32_t id : built->ids) token_strs.push_back(tokenizer->IdToToken(id).value_or(""));
  }
  exchange->Respond(JsonResponse({{"count", built->ids.size()},
                                  {"max_model_len", frontend_->engine()->max_model_len()},
                                  {"tokens", built->ids},
                                  {"token_strs", std::move(token_strs)}}));
}

void OpenAiRouter::Detokenize(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange) {
  absl::StatusOr<Json> body = openai::ParseBody(request.body);
  if (!body.ok()) return Reply(exchange, body.status());
  if (absl::Status s = openai::CheckSupported(*body, {"model", "tokens"}, "/detokenize"); !s.ok()) {
    return Reply(exchange, s);
  }
  if (absl::Status s = openai::CheckModel(*body, options_.model_id); !s.ok()) {
    return Reply(exchange, s);
  }
  auto tokens = body->find("tokens");
  if (tokens == body->end() || !tokens->is_array()) {
    return Reply(exchange, serving::InvalidField("tokens", " must be an array of token ids"));
  }
  std::vector<int32_t> ids;
  for (size_t i = 0; i < tokens->size(); ++i) {
    if (!(*tokens)[i].is_number_integer()) {
      return Reply(exchange, serving::InvalidField(absl::StrCat("tokens[", i, "]"), " must be a token id"));
    }
    const int64_t id = (*tokens)[i].get<int64_t>();
    ids.push_back(id < 0 || id > INT32_MAX ? -1 : static_cast<int32_t>(id));
  }
  absl::StatusOr<std::string> text = frontend_->Detokenize(ids, /*skip_special_tokens=*/true, "tokens");
  if (!text.ok()) return Reply(exchange, text.status());
  exchange->Respond(JsonResponse({{"prompt", *std::move(text)}}));
}

}  // namespace moeserve::api

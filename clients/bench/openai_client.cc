#include "clients/bench/openai_client.h"

#include <algorithm>
#include <cctype>

#include "clients/bench/sse.h"
#include "nlohmann/json.hpp"

namespace moeserve::bench {

using json = nlohmann::json;
using Outcome = HttpResponseHandler::Outcome;

namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;

std::string Upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

bool NonEmptyString(const json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() && !it->get_ref<const std::string&>().empty();
}

// The message of an OpenAI error body {"error": {"message": ...}} (or {"error": "..."}, or
// {"message": ...}); the raw text when it is not one.
std::string ErrorMessage(std::string_view body) {
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object()) {
    const json* error = doc.contains("error") ? &doc["error"] : &doc;
    if (error->is_string()) return error->get<std::string>();
    if (error->is_object() && error->contains("message") && (*error)["message"].is_string()) {
      return (*error)["message"].get<std::string>();
    }
  }
  return std::string(body.substr(0, 512));
}

}  // namespace

std::string StatusNameForHttp(int http_status) {
  switch (http_status) {
    case 200: return "OK";
    case 400:
    case 422: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 408:
    case 504: return "DEADLINE_EXCEEDED";
    case 409: return "ABORTED";
    case 413:
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 501: return "UNIMPLEMENTED";
    case 502:
    case 503: return "UNAVAILABLE";
    default: return http_status >= 500 ? "INTERNAL" : "UNKNOWN";
  }
}

std::string MakeOpenAiRequestBody(OpenAiApi api, const std::string& model, const BenchPrompt& p,
                                  const RequestSpec& spec) {
  json body = json::object();
  body["model"] = model;
  if (api == OpenAiApi::kChat) {
    body["messages"] = json::array({{{"role", "user"}, {"content", p.text}}});
  } else if (!p.token_ids.empty()) {
    body["prompt"] = p.token_ids;
  } else {
    body["prompt"] = p.text;
  }
  body["max_tokens"] = p.output_tokens;
  body["temperature"] = spec.temperature;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  // Extensions of vLLM (and moeserve, llama.cpp for ignore_eos): sent only when asked for, so
  // servers without them still accept the default requests.
  if (spec.ignore_eos) body["ignore_eos"] = true;
  if (!spec.cache_salt.empty()) body["cache_salt"] = spec.cache_salt;
  return body.dump();
}

absl::StatusOr<OpenAiChunk> ParseOpenAiChunk(OpenAiApi api, std::string_view data) {
  const json doc = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    return absl::InvalidArgumentError("stream chunk is not a JSON object: " + std::string(data.substr(0, 200)));
  }
  OpenAiChunk chunk;
  if (doc.contains("error") && !doc["error"].is_null()) {
    const json& error = doc["error"];
    int code = 0;
    if (error.is_object() && error.contains("code") && error["code"].is_number_integer()) {
      code = error["code"].get<int>();
    }
    chunk.error_status = code > 0 ? StatusNameForHttp(code) : "INTERNAL";
    chunk.error_message = ErrorMessage(data);
    return chunk;
  }
  const auto choices = doc.find("choices");
  if (choices != doc.end() && choices->is_array()) {
    for (const json& choice : *choices) {
      if (!choice.is_object()) continue;
      if (api == OpenAiApi::kCompletions) {
        chunk.carries_tokens |= NonEmptyString(choice, "text");
      } else if (choice.contains("delta") && choice["delta"].is_object()) {
        const json& delta = choice["delta"];
        chunk.carries_tokens |=
            NonEmptyString(delta, "content") || NonEmptyString(delta, "reasoning_content") ||
            NonEmptyString(delta, "reasoning") ||
            (delta.contains("tool_calls") && delta["tool_calls"].is_array() && !delta["tool_calls"].empty());
      }
      if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
        chunk.finish_reason = Upper(choice["finish_reason"].get<std::string>());
      }
    }
  }
  const auto usage = doc.find("usage");
  if (usage != doc.end() && usage->is_object()) {
    chunk.has_usage = true;
    auto number = [](const json& o, const char* key) {
      return o.contains(key) && o[key].is_number_integer() ? o[key].get<int>() : 0;
    };
    chunk.prompt_tokens = number(*usage, "prompt_tokens");
    chunk.completion_tokens = number(*usage, "completion_tokens");
    if (usage->contains("prompt_tokens_details") && (*usage)["prompt_tokens_details"].is_object()) {
      chunk.cached_tokens = number((*usage)["prompt_tokens_details"], "cached_tokens");
    }
  }
  return chunk;
}

// One streamed request: turns the HTTP response into observer events.
class OpenAiStreamClient::Call : public StreamCall, public HttpResponseHandler {
 public:
  Call(OpenAiApi api, StreamObserver* observer) : api_(api), observer_(observer) {}

  void set_exchange(std::shared_ptr<HttpClient::Exchange> exchange) { exchange_ = std::move(exchange); }
  void Cancel() override {
    if (exchange_ != nullptr) exchange_->Cancel();
  }

  void OnHead(int status) override { http_status_ = status; }

  bool OnBody(std::string_view bytes, Clock::time_point at) override {
    if (http_status_ != 200) {
      error_body_.append(bytes.substr(0, kMaxErrorBody - std::min(kMaxErrorBody, error_body_.size())));
      return true;
    }
    bool keep_reading = true;
    sse_.Feed(bytes, [&](std::string_view data) {
      if (!keep_reading || saw_done_) return;
      if (data == "[DONE]") {
        saw_done_ = true;
        done_at_ = at;
        return;
      }
      absl::StatusOr<OpenAiChunk> chunk = ParseOpenAiChunk(api_, data);
      if (!chunk.ok()) {
        Fail("INTERNAL", std::string(chunk.status().message()));
        keep_reading = false;
        return;
      }
      if (!chunk->error_status.empty()) {
        Fail(chunk->error_status, chunk->error_message);
        keep_reading = false;
        return;
      }
      if (chunk->carries_tokens) observer_->OnTokens(1, at);
      if (!chunk->finish_reason.empty()) observer_->OnFinishReason(chunk->finish_reason);
      if (chunk->has_usage) {
        observer_->OnUsage(chunk->prompt_tokens, chunk->completion_tokens, chunk->cached_tokens);
      }
    });
    return keep_reading;
  }

  void OnEnd(Outcome outcome, const std::string& message, Clock::time_point at) override {
    if (!failure_status_.empty()) {
      observer_->OnDone(failure_status_, failure_message_, at);
      return;
    }
    switch (outcome) {
      case Outcome::kCancelled: observer_->OnDone("CANCELLED", message, at); return;
      case Outcome::kTimeout: observer_->OnDone("DEADLINE_EXCEEDED", "request timed out", at); return;
      case Outcome::kError:
        // A server that closes the connection right after [DONE] still delivered everything.
        if (saw_done_) return observer_->OnDone("OK", "", done_at_);
        observer_->OnDone("UNAVAILABLE", message, at);
        return;
      case Outcome::kComplete: break;
    }
    if (http_status_ != 200) {
      observer_->OnDone(StatusNameForHttp(http_status_),
                        "HTTP " + std::to_string(http_status_) + ": " + ErrorMessage(error_body_), at);
    } else if (!saw_done_) {
      observer_->OnDone("UNAVAILABLE", "the stream ended without data: [DONE]", at);
    } else {
      observer_->OnDone("OK", "", done_at_);
    }
  }

 private:
  void Fail(const std::string& status, const std::string& message) {
    if (failure_status_.empty()) {
      failure_status_ = status;
      failure_message_ = message;
    }
  }

  OpenAiApi api_;
  StreamObserver* observer_;
  std::shared_ptr<HttpClient::Exchange> exchange_;
  // Touched by the I/O thread only:
  int http_status_ = 0;
  std::string error_body_;
  SseParser sse_;
  bool saw_done_ = false;
  Clock::time_point done_at_;
  std::string failure_status_, failure_message_;
};

absl::StatusOr<std::unique_ptr<OpenAiStreamClient>> OpenAiStreamClient::Create(std::string_view base_url,
                                                                               OpenAiOptions options) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl(base_url);
  if (!url.ok()) return url.status();
  absl::StatusOr<std::unique_ptr<HttpClient>> http = HttpClient::Create(*url);
  if (!http.ok()) return http.status();
  return std::unique_ptr<OpenAiStreamClient>(new OpenAiStreamClient(*std::move(http), std::move(options)));
}

absl::StatusOr<std::string> OpenAiStreamClient::FirstModelId() {
  HttpRequest request;
  request.method = "GET";
  request.target = http_->url().path + "/models";
  request.timeout_s = 10;
  if (!options_.api_key.empty()) {
    request.headers.emplace_back("Authorization", "Bearer " + options_.api_key);
  }
  absl::StatusOr<std::pair<int, std::string>> response = http_->Fetch(std::move(request));
  if (!response.ok()) return response.status();
  const auto& [status, body] = *response;
  if (status != 200) {
    return absl::UnavailableError("GET " + http_->url().path + "/models: HTTP " + std::to_string(status) + ": " +
                                  ErrorMessage(body));
  }
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("data") || !doc["data"].is_array() || doc["data"].empty() ||
      !doc["data"][0].is_object() || !doc["data"][0].contains("id") || !doc["data"][0]["id"].is_string()) {
    return absl::UnavailableError("GET " + http_->url().path + "/models lists no model");
  }
  return doc["data"][0]["id"].get<std::string>();
}

std::unique_ptr<StreamCall> OpenAiStreamClient::Start(const BenchPrompt& prompt, const RequestSpec& spec,
                                                      StreamObserver* observer) {
  auto call = std::make_unique<Call>(options_.api, observer);
  if (options_.api == OpenAiApi::kChat && !prompt.token_ids.empty()) {
    observer->OnDone("INVALID_ARGUMENT", "the chat API takes text prompts, not token ids", Clock::now());
    return call;
  }
  HttpRequest request;
  request.target = http_->url().path + (options_.api == OpenAiApi::kChat ? "/chat/completions" : "/completions");
  request.headers = {
      {"Content-Type", "application/json"}, {"Accept", "text/event-stream"}, {"X-Request-Id", spec.request_id}};
  if (!options_.api_key.empty()) {
    request.headers.emplace_back("Authorization", "Bearer " + options_.api_key);
  }
  request.body = MakeOpenAiRequestBody(options_.api, options_.model, prompt, spec);
  request.timeout_s = spec.timeout_s;
  call->set_exchange(http_->Send(std::move(request), call.get()));
  return call;
}

}  // namespace moeserve::bench

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/api/http/http_request_reader.h"
#include "server/api/openai/generation_request.h"
#include "server/api/openai/openai_params.h"
#include "tests/fuzz/fuzz_time.h"
#include "tests/fuzz/http_request_fuzz.h"
#include "tests/fuzz/request_fuzz.h"

namespace moeserve::fuzz {
namespace {

constexpr char kTarget[] = "http_request_fuzz";
constexpr size_t kMaxInputBytes = size_t{1} << 16;
constexpr char kModel[] = "qwen3";

using api::openai::Json;

// Small limits, so that inputs reach them.
api::HttpServerOptions Options() {
  api::HttpServerOptions options;
  options.max_header_bytes = 2048;
  options.max_body_bytes = 16384;
  return options;
}

// The fields a refusal may name: the body's own keys, and those a request needs without sending
// them (a prompt; max_tokens, whose default must fit the context).
std::vector<std::string> Fields(const Json& body) {
  std::vector<std::string> fields = {"prompt", "messages", "max_tokens"};
  for (const auto& [key, value] : body.items()) fields.push_back(key);
  return fields;
}

// kReadError, kIgnored (no request yet, or one read: what its route makes of it decides).
RequestOutcome CheckRead(const api::http_internal::HttpReadResult& read, const api::HttpServerOptions& options,
                         std::string_view data) {
  if (read.consumed > data.size()) Fail(kTarget, "the reader consumed more bytes than it was given");
  if (read.error.has_value()) {
    const int status = read.error->first;
    if (status != 400 && status != 413 && status != 431) {
      Fail(kTarget, absl::StrCat("a failed read answered with status ", status));
    }
    if (read.error->second.empty()) Fail(kTarget, "a failed read answered without a message");
    if (read.request.has_value()) Fail(kTarget, "a failed read with a request");
    return RequestOutcome::kReadError;
  }
  if (!read.request.has_value()) return RequestOutcome::kIgnored;
  const api::HttpRequest& r = *read.request;
  if (static_cast<int64_t>(r.body.size()) > options.max_body_bytes) {
    Fail(kTarget, absl::StrCat("a body of ", r.body.size(), " bytes passed the limit of ", options.max_body_bytes));
  }
  if (r.method.empty()) {
    Fail(kTarget, "a request without a method: " +
                      absl::CHexEscape(absl::string_view(data.data(), std::min<size_t>(data.size(), 200))));
  }
  if (r.target.compare(0, r.path.size(), r.path) != 0 || r.path.find('?') != std::string::npos) {
    Fail(kTarget, "the path is not the target without its query");
  }
  for (const auto& [name, value] : r.headers) {
    if (name != absl::AsciiStrToLower(name)) Fail(kTarget, "a header name that is not lower case");
  }
  return RequestOutcome::kIgnored;
}

RequestOutcome FuzzChat(RequestFuzzEnv& env, const Json& body) {
  absl::StatusOr<api::openai::ChatCompletionRequest> chat = api::openai::ParseChatRequest(body, kModel);
  const std::vector<std::string> fields = Fields(body);
  if (!chat.ok()) return CheckRefusal(kTarget, chat.status(), fields, /*allow_not_found=*/true);
  if (chat->top_logprobs > 0 && !chat->logprobs) Fail(kTarget, "top_logprobs accepted without logprobs");
  if (chat->stream.include_usage && !chat->stream.stream) Fail(kTarget, "include_usage accepted without stream");
  if (!std::holds_alternative<serving::ChatPrompt>(chat->request.prompt)) Fail(kTarget, "a chat without messages");
  return CheckPrepared(kTarget, env.Prepare(&chat->request), chat->request, env.limits(), fields);
}

RequestOutcome FuzzCompletions(RequestFuzzEnv& env, const Json& body) {
  absl::StatusOr<api::openai::CompletionRequest> completion = api::openai::ParseCompletionRequest(body, kModel);
  const std::vector<std::string> fields = Fields(body);
  if (!completion.ok()) return CheckRefusal(kTarget, completion.status(), fields, /*allow_not_found=*/true);
  if (completion->prompts.empty()) Fail(kTarget, "a completion request without prompts");
  if (completion->stream.include_usage && !completion->stream.stream) {
    Fail(kTarget, "include_usage accepted without stream");
  }
  for (serving::ServingRequest& request : completion->prompts) {
    if (request.sampling.n != completion->prompts[0].sampling.n) Fail(kTarget, "prompts with different n");
    absl::StatusOr<serving::PreparedRequest> prepared = env.Prepare(&request);
    if (CheckPrepared(kTarget, prepared, request, env.limits(), fields) == RequestOutcome::kRefused) {
      return RequestOutcome::kRefused;  // the router answers the first refusal
    }
  }
  return RequestOutcome::kAccepted;
}

RequestOutcome FuzzTokenize(RequestFuzzEnv& env, const Json& body) {
  const std::vector<std::string> fields = Fields(body);
  serving::PromptInput input;
  serving::FieldNames names;
  if (body.contains("messages")) {
    absl::StatusOr<serving::ChatPrompt> conversation = api::openai::ParseConversation(body);
    if (!conversation.ok()) return CheckRefusal(kTarget, conversation.status(), fields);
    input = *std::move(conversation);
    names.prompt = "messages";
  } else {
    absl::StatusOr<std::optional<std::string>> prompt = api::openai::GetString(body, "prompt");
    if (!prompt.ok()) return CheckRefusal(kTarget, prompt.status(), fields);
    if (!prompt->has_value()) return RequestOutcome::kIgnored;  // the router's own refusal
    input = serving::TextPrompt{**prompt};
    names.prompt = "prompt";
  }
  absl::StatusOr<serving::BuiltPrompt> built = env.prompts().Build(input, names);
  if (!built.ok()) return CheckRefusal(kTarget, built.status(), fields);
  for (const int32_t id : built->ids) {
    if (id < 0 || id >= env.limits().vocab_size) Fail(kTarget, absl::StrCat("a tokenized prompt with id ", id));
  }
  return RequestOutcome::kAccepted;
}

}  // namespace

RequestOutcome FuzzHttpRequest(std::string_view data) {
  if (data.size() > kMaxInputBytes) return RequestOutcome::kIgnored;
  RequestFuzzEnv& env = RequestFuzzEnv::Get(MOESERVE_SOURCE_DIR);
  const absl::Duration start = ProcessCpuTime();
  static const api::HttpServerOptions* const options = new api::HttpServerOptions(Options());
  const api::http_internal::HttpReadResult read = api::http_internal::ReadHttpRequest(data, *options);
  RequestOutcome outcome = CheckRead(read, *options, data);
  if (read.request.has_value()) {
    const std::string& path = read.request->path;
    const bool chat = path == "/v1/chat/completions", completions = path == "/v1/completions",
               tokenize = path == "/tokenize";
    if (chat || completions || tokenize) {
      absl::StatusOr<Json> body = api::openai::ParseBody(read.request->body);
      if (!body.ok()) {
        if (!absl::IsInvalidArgument(body.status())) Fail(kTarget, "a body refused with a code other than 400");
        outcome = RequestOutcome::kRefused;
      } else if (chat) {
        outcome = FuzzChat(env, *body);
      } else if (completions) {
        outcome = FuzzCompletions(env, *body);
      } else {
        outcome = FuzzTokenize(env, *body);
      }
    }
  }
  CheckTime(kTarget, start);
  return outcome;
}

}  // namespace moeserve::fuzz

#ifndef MOESERVE_SERVER_API_OPENAI_GENERATION_REQUEST_H_
#define MOESERVE_SERVER_API_OPENAI_GENERATION_REQUEST_H_

// POST /v1/completions and POST /v1/chat/completions request bodies -> serving requests. Every
// OpenAI parameter is read or refused by name (400); values are range-checked by the serving
// layer with these field names. Pure functions; safe from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/api/openai/openai_params.h"
#include "server/api/openai/tool_choice.h"
#include "server/serving/serving_request.h"

namespace moeserve::api::openai {

// What both endpoints stream and how.
struct StreamOptions {
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
};

struct CompletionRequest {
  // One serving request per prompt (a batch of prompts is several), each with n samples; choice
  // index = prompt index * n + sample index.
  std::vector<serving::ServingRequest> prompts;
  StreamOptions stream;
  bool echo = false;                // the prompt's text before each choice's text
  std::optional<int32_t> logprobs;  // the legacy logprobs object with this many alternatives
};

absl::StatusOr<CompletionRequest> ParseCompletionRequest(const Json& body, const std::string& served_model);

struct ChatCompletionRequest {
  serving::ServingRequest request;  // prompt: a ChatPrompt
  StreamOptions stream;
  bool logprobs = false;  // the chat logprobs object
  int32_t top_logprobs = 0;
  bool parse_tool_calls = false;    // tools given and tool_choice is not "none"
  ToolChoice tool_choice;
  Json tools;  // body.tools when tool_choice forces a call or is "auto" without response_format, else null
  bool parallel_tool_calls = true;  // false: only each choice's first call is returned
};

absl::StatusOr<ChatCompletionRequest> ParseChatRequest(const Json& body, const std::string& served_model);

// The conversation of a chat or tokenize body (`messages`, plus tools and template options) as the
// chat template takes it: text parts joined, roles checked, a null assistant content next to tool
// calls made "" (transformers drops null keys, which DeepSeek's template cannot render).
absl::StatusOr<serving::ChatPrompt> ParseConversation(const Json& body);

}  // namespace moeserve::api::openai

#endif  // MOESERVE_SERVER_API_OPENAI_GENERATION_REQUEST_H_

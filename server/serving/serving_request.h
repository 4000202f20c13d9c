#ifndef MOESERVE_SERVER_SERVING_SERVING_REQUEST_H_
#define MOESERVE_SERVER_SERVING_SERVING_REQUEST_H_

// A generation request as every transport hands it to the serving layer (Frontend::Submit): the
// prompt as text, token ids or chat messages, the sampling parameters and the per-request options.
// Plain value types; no transport's types.

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "nlohmann/json.hpp"
#include "server/sampling/sampling_params.h"
#include "server/serving/errors.h"

namespace moeserve::serving {

// Prompt text, tokenized by the server.
struct TextPrompt {
  std::string text;
  bool add_special_tokens = true;  // the tokenizer's BOS/EOS around the text
};

// Prompt token ids, used as given.
struct TokenPrompt {
  std::vector<int32_t> ids;
};

// A conversation rendered with the model's chat template (special tokens come from the template,
// as transformers' apply_chat_template(tokenize=True) does).
struct ChatPrompt {
  // [{"role": ..., "content": "..."}, ...]; content is a string or null (an assistant turn with
  // tool_calls), plus any keys the template reads (tool_calls, tool_call_id, reasoning_content).
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;  // null: none
  bool add_generation_prompt = true;
  // More template variables (chat_template_kwargs, e.g. {"enable_thinking": false}).
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();
};

using PromptInput = std::variant<TextPrompt, TokenPrompt, ChatPrompt>;

struct ServingRequest {
  PromptInput prompt = TokenPrompt{};
  SamplingParams sampling;
  int32_t priority = 0;  // lower is served first
  // sampling.max_tokens is taken as what the context leaves after the prompt (OpenAI chat's
  // default when neither max_tokens nor max_completion_tokens is given).
  bool max_tokens_to_context = false;
  std::string cache_salt;  // separates prefix caches (per tenant); at most kMaxCacheSaltBytes

  // Output.
  bool skip_special_tokens = true;  // leave special tokens out of the text
  bool logprob_text = false;        // fill LogprobToken::text (each logprob token's own text)

  // How the client names the fields, for error messages.
  FieldNames names;

  // Optional: probed on the engine thread before every step; once true the request is aborted
  // (see EngineRequest::is_cancelled).
  std::function<bool()> is_cancelled;
  // Optional: called whenever new output can be read with Call::Next, on the engine thread or the
  // caller's. Must be cheap, must not block and must not call into the Call. May be called after
  // the Call is gone.
  std::function<void()> on_output;
};

inline constexpr size_t kMaxCacheSaltBytes = 256;

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_SERVING_REQUEST_H_

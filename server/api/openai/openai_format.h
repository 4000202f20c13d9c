#ifndef MOESERVE_SERVER_API_OPENAI_OPENAI_FORMAT_H_
#define MOESERVE_SERVER_API_OPENAI_OPENAI_FORMAT_H_

// The JSON pieces of OpenAI responses shared by both generation endpoints: usage, finish reasons,
// SSE framing, and the two logprobs formats (legacy completions, chat). Pure functions and a
// value accumulator; thread-compatible.

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "server/engine/request_output.h"
#include "server/serving/serving_output.h"

namespace moeserve::api::openai {

using Json = nlohmann::json;

// {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details": {"cached_tokens"}}.
Json UsageJson(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);

// "stop", "length", or "tool_calls" (a stop after tool calls); "abort" and "error" otherwise.
const char* FinishReasonString(FinishReason reason, bool tool_calls);
// vLLM's stop_reason: the matched stop string, the stop token id, or null.
Json StopReason(const serving::Output& out);

// "data: <json>\n\n" (invalid UTF-8 replaced, never an exception).
std::string SseEvent(const Json& data);
inline constexpr char kSseDone[] = "data: [DONE]\n\n";
inline constexpr char kSseKeepAlive[] = ": keep-alive\n\n";

// A logprob as JSON: -inf (or NaN) becomes -9999.0, as OpenAI writes it.
double LogprobValue(float logprob);

// The legacy completions `logprobs` object of one choice: tokens, token_logprobs, top_logprobs
// (the alternatives and the chosen token), text_offset (each token's offset in the choice text).
class LegacyLogprobs {
 public:
  explicit LegacyLogprobs(int64_t text_offset = 0) : offset_(text_offset) {}
  // A token without a logprob (the first echoed prompt token): nulls.
  void AppendUnscored(const std::string& token_text);
  void Append(const serving::OutputLogprobs& lp);
  // The object for what was appended since the last Take (streamed chunks), or everything.
  Json Take();
  bool empty() const { return tokens_.empty(); }

 private:
  Json tokens_ = Json::array();
  Json token_logprobs_ = Json::array();
  Json top_logprobs_ = Json::array();
  Json text_offset_ = Json::array();
  int64_t offset_;
};

// The chat `logprobs.content` entries of `logprobs`, each with `top` alternatives.
Json ChatLogprobContent(const std::vector<serving::OutputLogprobs>& logprobs, int32_t top);

}  // namespace moeserve::api::openai

#endif  // MOESERVE_SERVER_API_OPENAI_OPENAI_FORMAT_H_

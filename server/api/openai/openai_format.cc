#include "server/api/openai/openai_format.h"

#include <cmath>

namespace moeserve::api::openai {
namespace {

Json Bytes(const std::string& text) {
  Json out = Json::array();
  for (unsigned char c : text) out.push_back(static_cast<int>(c));
  return out;
}

}  // namespace

Json UsageJson(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  return Json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

const char* FinishReasonString(FinishReason reason, bool tool_calls) {
  switch (reason) {
    case FinishReason::kStop: return tool_calls ? "tool_calls" : "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kError: return "error";
    case FinishReason::kNone: break;
  }
  return "";
}

Json StopReason(const serving::Output& out) {
  if (!out.stop_string.empty()) return out.stop_string;
  if (out.stop_token_id >= 0) return out.stop_token_id;
  return nullptr;
}

std::string SseEvent(const Json& data) {
  return "data: " + data.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
}

double LogprobValue(float logprob) { return std::isfinite(logprob) ? static_cast<double>(logprob) : -9999.0; }

void LegacyLogprobs::AppendUnscored(const std::string& token_text) {
  tokens_.push_back(token_text);
  token_logprobs_.push_back(nullptr);
  top_logprobs_.push_back(nullptr);
  text_offset_.push_back(offset_);
  offset_ += static_cast<int64_t>(token_text.size());
}

void LegacyLogprobs::Append(const serving::OutputLogprobs& lp) {
  tokens_.push_back(lp.token.text);
  token_logprobs_.push_back(LogprobValue(lp.token.logprob));
  Json top = Json::object();
  for (const serving::LogprobToken& t : lp.top) top[t.text] = LogprobValue(t.logprob);
  top[lp.token.text] = LogprobValue(lp.token.logprob);
  top_logprobs_.push_back(std::move(top));
  text_offset_.push_back(offset_);
  offset_ += static_cast<int64_t>(lp.token.text.size());
}

Json LegacyLogprobs::Take() {
  Json out{{"tokens", std::move(tokens_)},
           {"token_logprobs", std::move(token_logprobs_)},
           {"top_logprobs", std::move(top_logprobs_)},
           {"text_offset", std::move(text_offset_)}};
  tokens_ = Json::array();
  token_logprobs_ = Json::array();
  top_logprobs_ = Json::array();
  text_offset_ = Json::array();
  return out;
}

Json ChatLogprobContent(const std::vector<serving::OutputLogprobs>& logprobs, int32_t top) {
  Json content = Json::array();
  for (const serving::OutputLogprobs& lp : logprobs) {
    Json alternatives = Json::array();
    for (size_t k = 0; k < lp.top.size() && static_cast<int32_t>(k) < top; ++k) {
      alternatives.push_back(
          {{"token", lp.top[k].text}, {"logprob", LogprobValue(lp.top[k].logprob)}, {"bytes", Bytes(lp.top[k].text)}});
    }
    content.push_back({{"token", lp.token.text},
                       {"logprob", LogprobValue(lp.token.logprob)},
                       {"bytes", Bytes(lp.token.text)},
                       {"top_logprobs", std::move(alternatives)}});
  }
  return content;
}

}  // namespace moeserve::api::openai

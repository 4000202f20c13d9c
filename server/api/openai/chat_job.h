#ifndef MOESERVE_SERVER_API_OPENAI_CHAT_JOB_H_
#define MOESERVE_SERVER_API_OPENAI_CHAT_JOB_H_

// The /v1/chat/completions choices: the assistant message split by the chat output parsers into
// reasoning_content (<think>…</think>), content and tool_calls, whole or as deltas (the first
// chunk of each choice carries role "assistant"), with the chat logprobs object. A finish by stop
// after tool calls is "tool_calls". See GenerationJob.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/api/openai/generation_job.h"
#include "server/serving/parsers/chat_output_parser.h"

namespace moeserve::api::openai {

struct ChatJobOptions {
  parsers::ChatParserOptions parser;  // per request: formats and a fresh tool-call id seed
  bool parallel_tool_calls = true;    // false: only each choice's first call
  bool logprobs = false;
  int32_t top_logprobs = 0;
};

class ChatJob final : public GenerationJob {
 public:
  ChatJob(std::shared_ptr<HttpExchange> exchange, JobOptions options, ChatJobOptions chat);

 private:
  struct Choice {
    std::optional<parsers::ChatOutputParser> parser;
    std::string reasoning;
    std::string content;
    Json tool_calls = Json::array();
    Json logprobs = Json::array();
    std::string finish_reason;
  };

  void OnStart(std::string* sse) override;
  void OnOutput(int prompt, int choice, const serving::Call& call, const serving::Output& out,
                std::string* sse) override;
  Json WholeResponse(Json usage) override;
  const char* ChunkObject() const override { return "chat.completion.chunk"; }

  // Appends a parser delta to the choice (whole) or to `delta` (streamed).
  void Take(Choice& c, parsers::ChatDelta d, Json* delta);

  const ChatJobOptions chat_;
  std::vector<Choice> choices_;
};

}  // namespace moeserve::api::openai

#endif  // MOESERVE_SERVER_API_OPENAI_CHAT_JOB_H_

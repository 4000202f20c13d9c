#ifndef MOESERVE_SERVER_SERVING_PARSERS_CHAT_OUTPUT_PARSER_H_
#define MOESERVE_SERVER_SERVING_PARSERS_CHAT_OUTPUT_PARSER_H_

// The chat endpoint's view of one completion's generated text: reasoning (`reasoning_content`),
// content, and tool calls. Chains ReasoningParser and ToolCallParser: the reasoning split runs
// first, and only content is searched for tool calls (a call inside the reasoning is thought,
// not action).
//
// Use, per completion of a chat request (one parser per `index` when n > 1):
//   ChatOutputParser parser(options, rendered_prompt);
//   for each text delta of the completion:  ChatDelta d = parser.Feed(delta.text);  send d
//   at its end:                             ChatDelta d = parser.Finish();          send d
// or ParseChatOutput(options, rendered_prompt, text) for a non-streamed response. Text only:
// the markup (<think>, <tool_call>, DeepSeek's tool tokens) is not special in the tokenizers, so
// it is in the detokenized text (with skip_special_tokens as well).
//
// ChatDelta maps onto an OpenAI chat.completion.chunk delta: `reasoning` -> reasoning_content,
// `content` -> content, each ToolCall -> an entry of tool_calls {index, id, type: "function",
// function: {name, arguments}}. Empty deltas (empty()) need not be sent. When num_tool_calls() > 0
// at the end, a finish_reason of "stop" becomes "tool_calls"; "length" stays.
//
// Requires external synchronization.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/serving/parsers/reasoning_parser.h"
#include "server/serving/parsers/tool_call_parser.h"

namespace moeserve::parsers {

struct ChatParserOptions {
  ReasoningFormat reasoning = ReasoningFormat::kNone;
  // kNone when the request has no tools or tool_choice is "none".
  ToolCallFormat tool_calls = ToolCallFormat::kNone;
  uint64_t tool_call_id_seed = 0;  // a fresh random value per request (see ToolCallId)
};

struct ChatDelta {
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> tool_calls;
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

class ChatOutputParser {
 public:
  // `prompt_text`: the prompt as the chat template rendered it (see ReasoningParser).
  ChatOutputParser(const ChatParserOptions& options, std::string_view prompt_text);

  // REQUIRES: Finish() not called yet.
  ChatDelta Feed(std::string_view text);
  ChatDelta Finish();

  bool saw_reasoning() const { return reasoning_.saw_reasoning(); }
  int num_tool_calls() const { return tools_.num_calls(); }

 private:
  ReasoningParser reasoning_;
  ToolCallParser tools_;
};

// A whole completion's text, parsed.
struct ParsedChatOutput {
  std::string reasoning;
  bool has_reasoning = false;  // a reasoning block was open (reasoning may still be "")
  std::string content;
  std::vector<ToolCall> tool_calls;
};

// The same result as Feed(text) + Finish() on a ChatOutputParser, gathered.
ParsedChatOutput ParseChatOutput(const ChatParserOptions& options, std::string_view prompt_text, std::string_view text);

}  // namespace moeserve::parsers

#endif  // MOESERVE_SERVER_SERVING_PARSERS_CHAT_OUTPUT_PARSER_H_

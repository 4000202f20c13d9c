#include "server/serving/parsers/chat_output_parser.h"

#include <iterator>

namespace moeserve::parsers {
namespace {

void Append(ToolCallDelta tools, ChatDelta* out) {
  out->content.append(tools.content);
  out->tool_calls.insert(out->tool_calls.end(), std::make_move_iterator(tools.calls.begin()),
                         std::make_move_iterator(tools.calls.end()));
}

}  // namespace

ChatOutputParser::ChatOutputParser(const ChatParserOptions& options, std::string_view prompt_text)
    : reasoning_(options.reasoning, prompt_text), tools_(options.tool_calls, options.tool_call_id_seed) {}

ChatDelta ChatOutputParser::Feed(std::string_view text) {
  ReasoningDelta split = reasoning_.Feed(text);
  ChatDelta out;
  out.reasoning = std::move(split.reasoning);
  if (!split.content.empty()) Append(tools_.Feed(split.content), &out);
  return out;
}

ChatDelta ChatOutputParser::Finish() {
  ReasoningDelta split = reasoning_.Finish();
  ChatDelta out;
  out.reasoning = std::move(split.reasoning);
  if (!split.content.empty()) Append(tools_.Feed(split.content), &out);
  Append(tools_.Finish(), &out);
  return out;
}

ParsedChatOutput ParseChatOutput(const ChatParserOptions& options, std::string_view prompt_text,
                                 std::string_view text) {
  ChatOutputParser parser(options, prompt_text);
  ParsedChatOutput result;
  for (ChatDelta delta : {parser.Feed(text), parser.Finish()}) {
    result.reasoning.append(delta.reasoning);
    result.content.append(delta.content);
    for (ToolCall& call : delta.tool_calls) result.tool_calls.push_back(std::move(call));
  }
  result.has_reasoning = parser.saw_reasoning();
  return result;
}

}  // namespace moeserve::parsers

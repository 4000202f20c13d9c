#ifndef MOESERVE_SERVER_SERVING_PARSERS_TOOL_CALL_SYNTAX_H_
#define MOESERVE_SERVER_SERVING_PARSERS_TOOL_CALL_SYNTAX_H_

// How each supported model family writes tool calls: the markup around a call and how to read a
// call's body. Used by ToolCallParser; the body readers are pure and never throw.
//
//   Hermes / Qwen (Qwen2.5, Qwen3, QwQ, Hermes): one call per tag pair, parallel calls in sequence:
//     <tool_call>
//     {"name": "get_weather", "arguments": {"city": "Paris"}}
//     </tool_call>
//   DeepSeek-V3 / R1 (special tokens, all in one block):
//     <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
//     ```json
//     {"city": "Paris"}
//     ```<｜tool▁call▁end｜>
//     <｜tool▁call▁begin｜>function<｜tool▁sep｜>...<｜tool▁call▁end｜><｜tool▁calls▁end｜>
//   DeepSeek-V3.1 drops the type and the fence, and is read by the same parser:
//     <｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}<｜tool▁call▁end｜>

#include <optional>
#include <string>
#include <string_view>

namespace moeserve::parsers {

enum class ToolCallFormat {
  kNone,        // no tool-call parsing: everything is content
  kHermes,      // <tool_call>{json}</tool_call>
  kDeepSeekV3,  // DeepSeek-V3/R1 tool-call tokens
};

struct ParsedToolCall {
  std::string name;
  std::string arguments;  // a JSON object, exactly as the model wrote it (trimmed)
};

struct ToolCallSyntax {
  std::string_view block_begin;  // empty: calls are not grouped in a block
  std::string_view block_end;
  std::string_view call_begin;
  std::string_view call_end;
  // Reads the text between call_begin and call_end; nullopt when it is not a well-formed call
  // (then it goes back to the client as content).
  std::optional<ParsedToolCall> (*read_body)(std::string_view body);
};

// REQUIRES: format != kNone.
const ToolCallSyntax& SyntaxOf(ToolCallFormat format);

// {"name": string, "arguments": object} ("parameters" is accepted for "arguments", as is an
// object encoded as a JSON string; absent or null arguments are "{}").
std::optional<ParsedToolCall> ReadHermesCallBody(std::string_view body);
// "function<｜tool▁sep｜>NAME\n```json\nARGS\n```" or "NAME<｜tool▁sep｜>ARGS"; ARGS a JSON object.
std::optional<ParsedToolCall> ReadDeepSeekCallBody(std::string_view body);

}  // namespace moeserve::parsers

#endif  // MOESERVE_SERVER_SERVING_PARSERS_TOOL_CALL_SYNTAX_H_

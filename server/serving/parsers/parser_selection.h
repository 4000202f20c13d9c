#ifndef MOESERVE_SERVER_SERVING_PARSERS_PARSER_SELECTION_H_
#define MOESERVE_SERVER_SERVING_PARSERS_PARSER_SELECTION_H_

// Which reasoning and tool-call parsers a model gets: chosen from its chat template, or named by
// `moeserve serve --reasoning-parser NAME` / `--tool-call-parser NAME` (vLLM's flag names).
//
//   --reasoning-parser  auto (default) | none | deepseek_r1 | qwen3
//   --tool-call-parser  auto (default) | none | deepseek_v3 | hermes
//
// auto reads the chat template's text:
//   - reasoning: a template that writes <think>/</think> is a reasoning model's: deepseek_r1 when
//     it is DeepSeek's chat format (<｜Assistant｜>: R1 and its Qwen/Llama distills), otherwise
//     qwen3 (Qwen3, QwQ). DeepSeek-V3's template has no <think>: none.
//   - tool calls: deepseek_v3 when the template writes DeepSeek's tool-call tokens, hermes when it
//     writes <tool_call>, otherwise none.
// Pure functions.

#include <string_view>

#include "absl/status/statusor.h"
#include "server/serving/parsers/reasoning_parser.h"
#include "server/serving/parsers/tool_call_syntax.h"

namespace moeserve::parsers {

ReasoningFormat DetectReasoningFormat(std::string_view chat_template);
ToolCallFormat DetectToolCallFormat(std::string_view chat_template);

// `flag`: a name above. InvalidArgument naming the flag and the accepted names otherwise.
absl::StatusOr<ReasoningFormat> ResolveReasoningFormat(std::string_view flag, std::string_view chat_template);
absl::StatusOr<ToolCallFormat> ResolveToolCallFormat(std::string_view flag, std::string_view chat_template);

const char* ReasoningFormatName(ReasoningFormat format);  // "none", "deepseek_r1", "qwen3"
const char* ToolCallFormatName(ToolCallFormat format);    // "none", "deepseek_v3", "hermes"

}  // namespace moeserve::parsers

#endif  // MOESERVE_SERVER_SERVING_PARSERS_PARSER_SELECTION_H_

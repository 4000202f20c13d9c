#include "server/serving/parsers/tool_call_syntax.h"

#include "server/common/logging.h"
#include "server/serving/parsers/json_text.h"
#include "server/serving/parsers/text_scan.h"

namespace moeserve::parsers {
namespace {

constexpr std::string_view kDeepSeekSep = "<｜tool▁sep｜>";
constexpr std::string_view kFence = "```";

// A function name as models write it: non-empty, one line, no markup.
bool IsPlausibleName(std::string_view name) {
  return !name.empty() && name.find_first_of("\n\r<>{}\"") == std::string_view::npos;
}

constexpr ToolCallSyntax kHermes{"", "", "<tool_call>", "</tool_call>", &ReadHermesCallBody};
constexpr ToolCallSyntax kDeepSeekV3{"<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>",
                                     "<｜tool▁call▁end｜>", &ReadDeepSeekCallBody};

}  // namespace

const ToolCallSyntax& SyntaxOf(ToolCallFormat format) {
  MS_CHECK(format != ToolCallFormat::kNone);
  return format == ToolCallFormat::kHermes ? kHermes : kDeepSeekV3;
}

std::optional<ParsedToolCall> ReadHermesCallBody(std::string_view body) {
  const std::optional<std::vector<JsonMember>> members = JsonObjectMembers(body);
  if (!members) return std::nullopt;
  const JsonMember* name = nullptr;
  const JsonMember* arguments = nullptr;
  for (const JsonMember& m : *members) {
    if (m.key == "name" && name == nullptr) name = &m;
    if ((m.key == "arguments" || m.key == "parameters") && arguments == nullptr) arguments = &m;
  }
  if (name == nullptr) return std::nullopt;
  std::optional<std::string> name_value = JsonStringValue(name->value);
  if (!name_value || !IsPlausibleName(*name_value)) return std::nullopt;
  ParsedToolCall call{*std::move(name_value), "{}"};
  if (arguments == nullptr || arguments->value == "null") return call;
  if (arguments->value.front() == '{') {
    call.arguments = std::string(arguments->value);
    return call;
  }
  // Some models encode the arguments object as a JSON string.
  std::optional<std::string> encoded = JsonStringValue(arguments->value);
  if (!encoded || !IsJsonObject(*encoded)) return std::nullopt;
  call.arguments = std::string(TrimSpace(*encoded));
  return call;
}

std::optional<ParsedToolCall> ReadDeepSeekCallBody(std::string_view body) {
  const size_t sep = body.find(kDeepSeekSep);
  if (sep == std::string_view::npos) return std::nullopt;
  const std::string_view head = TrimSpace(body.substr(0, sep));
  std::string_view tail = body.substr(sep + kDeepSeekSep.size());
  tail.remove_prefix(LeadingSpace(tail));
  ParsedToolCall call;
  std::string_view arguments;
  if (tail.starts_with("{")) {
    // V3.1: NAME<sep>ARGS.
    call.name = std::string(head);
    arguments = tail;
  } else {
    // V3/R1: TYPE<sep>NAME\n```json\nARGS\n```.
    if (head != "function") return std::nullopt;
    const size_t newline = tail.find('\n');
    if (newline == std::string_view::npos) return std::nullopt;
    call.name = std::string(TrimSpace(tail.substr(0, newline)));
    arguments = TrimSpace(tail.substr(newline + 1));
    if (arguments.starts_with(kFence)) {
      const size_t first_line_end = arguments.find('\n');
      const size_t closing = arguments.rfind(kFence);
      if (first_line_end == std::string_view::npos || closing < first_line_end) return std::nullopt;
      if (TrimSpace(arguments.substr(closing + kFence.size())).size() != 0) return std::nullopt;
      arguments = arguments.substr(first_line_end + 1, closing - first_line_end - 1);
    }
  }
  arguments = TrimSpace(arguments);
  if (!IsPlausibleName(call.name) || !IsJsonObject(arguments)) return std::nullopt;
  call.arguments = std::string(arguments);
  return call;
}

}  // namespace moeserve::parsers

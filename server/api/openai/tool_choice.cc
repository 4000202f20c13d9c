#include "server/api/openai/tool_choice.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/serving/errors.h"
#include "server/structured/json_schema.h"
#include "server/structured/tool_calls_grammar.h"

namespace moeserve::api::openai {
namespace {

// DeepSeek-V3's separator between a call's type and its function name (tool_call_syntax.h).
constexpr char kDeepSeekSep[] = "<｜tool▁sep｜>";

// The schema a call's arguments follow: the function's parameters, or null (any JSON object) for a
// non-strict function whose schema the compiler cannot take, or for any non-strict function when
// `only_strict`.
absl::StatusOr<Json> ArgumentsSchema(const Json& function, size_t index, bool only_strict) {
  const std::string field = absl::StrCat("tools[", index, "].function.parameters");
  const auto strict_it = function.find("strict");
  const bool strict = strict_it != function.end() && strict_it->is_boolean() && strict_it->get<bool>();
  if (only_strict && !strict) return Json(nullptr);
  Json schema = Json{{"type", "object"}, {"properties", Json::object()}};  // no parameters: {}
  if (auto it = function.find("parameters"); it != function.end() && !it->is_null()) schema = *it;
  if (!schema.contains("type")) schema["type"] = "object";
  if (schema["type"] != "object") {
    if (strict) return serving::InvalidField(field, ": must describe an object (\"type\": \"object\")");
    return Json(nullptr);
  }
  absl::StatusOr<structured::Grammar> grammar = structured::JsonSchemaToGrammar(schema.dump());
  if (!grammar.ok()) {
    if (!strict) return Json(nullptr);
    std::string message(grammar.status().message());
    if (message.rfind("json_schema: ", 0) == 0) message.erase(0, 13);
    return serving::InvalidField(field, absl::StrCat(": ", message));
  }
  return schema;
}

bool IsStrict(const Json& tool) {
  const Json& function = tool["function"];
  auto it = function.find("strict");
  return it != function.end() && it->is_boolean() && it->get<bool>();
}

// The calls of a tool-calls spec (tool_calls_grammar.h), one per tool (only `only` when not null),
// in `format`'s layout; `skip` bytes are dropped from the front of each call's opening (the part a
// trigger already wrote).
absl::StatusOr<Json> CallSpecs(const Json& tools, parsers::ToolCallFormat format, const std::string* only,
                               bool only_strict, size_t skip) {
  const parsers::ToolCallSyntax& syntax = parsers::SyntaxOf(format);
  const std::string call_begin(syntax.call_begin), call_end(syntax.call_end);
  Json calls = Json::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const Json& function = tools[i]["function"];
    const std::string name = function["name"].get<std::string>();
    if (only != nullptr && name != *only) continue;
    absl::StatusOr<Json> arguments = ArgumentsSchema(function, i, only_strict);
    if (!arguments.ok()) return arguments.status();
    // Each format's own layout: Qwen3's chat template and DeepSeek-V3's write calls this way.
    std::string before, after;
    if (format == parsers::ToolCallFormat::kHermes) {
      before = absl::StrCat(call_begin, "\n{\"name\": ", Json(name).dump(), ", \"arguments\": ");
      after = absl::StrCat("}\n", call_end);
    } else {
      before = absl::StrCat(call_begin, "function", kDeepSeekSep, name, "\n```json\n");
      after = absl::StrCat("\n```", call_end);
    }
    calls.push_back({{"before", before.substr(skip)}, {"arguments", *std::move(arguments)}, {"after", after}});
  }
  return calls;
}

}  // namespace

absl::StatusOr<ToolChoice> ParseToolChoice(const Json& body, const Json& tools) {
  const bool has_tools = tools.is_array() && !tools.empty();
  ToolChoice choice{.mode = has_tools ? ToolChoice::Mode::kAuto : ToolChoice::Mode::kNone};
  auto it = body.find("tool_choice");
  if (it == body.end() || it->is_null()) return choice;
  if (it->is_string()) {
    const std::string value = it->get<std::string>();
    if (value == "none") {
      choice.mode = ToolChoice::Mode::kNone;
    } else if (value == "auto" || value == "required") {
      choice.mode = value == "auto" ? ToolChoice::Mode::kAuto : ToolChoice::Mode::kRequired;
      if (!has_tools) return serving::InvalidField("tool_choice", absl::StrCat(": \"", value, "\" needs tools"));
    } else {
      return serving::InvalidField(
          "tool_choice", absl::StrCat(": must be \"none\", \"auto\", \"required\" or a function, got \"", value, "\""));
    }
    return choice;
  }
  const Json& c = *it;
  if (!c.is_object() || c.value("type", "") != "function" || !c.contains("function") || !c["function"].is_object() ||
      !c["function"].contains("name") || !c["function"]["name"].is_string()) {
    return serving::InvalidField("tool_choice",
                                 " must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                                 "\"function\": {\"name\": ...}}");
  }
  choice.mode = ToolChoice::Mode::kFunction;
  choice.function = c["function"]["name"].get<std::string>();
  if (has_tools) {
    for (const Json& t : tools) {
      if (t["function"]["name"] == choice.function) return choice;
    }
  }
  return serving::InvalidField("tool_choice.function.name", absl::StrCat(": no tool named \"", choice.function, "\""));
}

absl::StatusOr<structured::Constraint> ForcedToolCallConstraint(const Json& tools, const ToolChoice& choice,
                                                                bool parallel_tool_calls,
                                                                parsers::ToolCallFormat format) {
  if (format == parsers::ToolCallFormat::kNone) {
    return serving::InvalidField("tool_choice",
                                 ": this model has no tool-call format (its chat template writes none; start the "
                                 "server with --tool-call-parser hermes or deepseek_v3)");
  }
  const parsers::ToolCallSyntax& syntax = parsers::SyntaxOf(format);
  absl::StatusOr<Json> calls =
      CallSpecs(tools, format, choice.mode == ToolChoice::Mode::kFunction ? &choice.function : nullptr,
                /*only_strict=*/false, /*skip=*/0);
  if (!calls.ok()) return calls.status();
  const Json spec = {{"begin", std::string(syntax.block_begin)},
                     {"end", std::string(syntax.block_end)},
                     {"separator", "\n"},
                     {"max_calls", choice.mode == ToolChoice::Mode::kFunction || !parallel_tool_calls ? 1 : 0},
                     {"calls", *std::move(calls)}};
  return structured::Constraint{.kind = structured::Constraint::Kind::kToolCalls, .value = spec.dump()};
}

absl::StatusOr<std::optional<structured::Constraint>> AutoToolCallConstraint(const Json& tools,
                                                                             bool parallel_tool_calls,
                                                                             parsers::ToolCallFormat format) {
  if (format == parsers::ToolCallFormat::kNone || !tools.is_array() ||
      std::none_of(tools.begin(), tools.end(), IsStrict)) {
    return std::nullopt;
  }
  const parsers::ToolCallSyntax& syntax = parsers::SyntaxOf(format);
  Json spec;
  if (format == parsers::ToolCallFormat::kHermes) {
    // Each call opens with <tool_call>: one call per trigger, as many triggers as calls.
    absl::StatusOr<Json> calls = CallSpecs(tools, format, nullptr, /*only_strict=*/true, syntax.call_begin.size());
    if (!calls.ok()) return calls.status();
    spec = {{"trigger", std::string(syntax.call_begin)},
            {"max_triggers", parallel_tool_calls ? 0 : 1},
            {"tool_calls", {{"max_calls", 1}, {"calls", *std::move(calls)}}}};
  } else {
    // One block of calls; a call opening outside it would be a call the grammar never sees.
    absl::StatusOr<Json> calls = CallSpecs(tools, format, nullptr, /*only_strict=*/true, 0);
    if (!calls.ok()) return calls.status();
    spec = {{"trigger", std::string(syntax.block_begin)},
            {"avoid", {std::string(syntax.call_begin)}},
            {"max_triggers", 1},
            {"tool_calls",
             {{"end", std::string(syntax.block_end)},
              {"separator", "\n"},
              {"max_calls", parallel_tool_calls ? 0 : 1},
              {"calls", *std::move(calls)}}}};
  }
  return structured::Constraint{.kind = structured::Constraint::Kind::kTriggered, .value = spec.dump()};
}

}  // namespace moeserve::api::openai

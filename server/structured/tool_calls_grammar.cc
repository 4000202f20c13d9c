#include "server/structured/tool_calls_grammar.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/status_macros.h"
#include "server/structured/fsm.h"

namespace moeserve::structured {
namespace {

using Json = nlohmann::ordered_json;

absl::Status SpecError(std::string_view prefix, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(prefix), std::string(message)));
}

void ShiftRefs(int32_t offset, Expr* e) {
  if (e->kind == Expr::Kind::kRuleRef) e->rule += offset;
  for (Expr& child : e->children) ShiftRefs(offset, &child);
}

// The string member `key` of `object` ("" when absent); false when it is there but not a string.
bool StringMember(const Json& object, const char* key, std::string* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

// An optional count member (absent or null: 0) in [0, 1024]; an error naming it otherwise.
absl::Status CountMember(const Json& object, const char* key, std::string_view prefix, int64_t* out) {
  *out = 0;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 1024) {
    return SpecError(prefix, absl::StrCat(key, " must be an integer in [0, 1024]"));
  }
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::StatusOr<Json> ParseSpec(std::string_view text, std::string_view prefix) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return SpecError(prefix, absl::StrCat("invalid JSON: ", e.what()));
  }
}

}  // namespace

int32_t EmbedGrammar(Grammar from, std::string_view prefix, Grammar* into) {
  const int32_t offset = static_cast<int32_t>(into->rules.size());
  for (Rule& rule : from.rules) {
    ShiftRefs(offset, &rule.body);
    into->rules.push_back({absl::StrCat(std::string(prefix), rule.name), std::move(rule.body)});
  }
  return offset + from.root;
}

namespace {

// The grammar of a parsed tool-calls spec; errors start with `prefix`.
absl::StatusOr<Grammar> ToolCallsFromSpec(const Json& spec, const JsonSchemaOptions& options, std::string_view prefix) {
  if (!spec.is_object()) return SpecError(prefix, "the spec must be a JSON object");
  for (const auto& [key, value] : spec.items()) {
    if (key != "begin" && key != "end" && key != "separator" && key != "max_calls" && key != "calls") {
      return SpecError(prefix, absl::StrCat("unknown field '", key, "'"));
    }
  }
  std::string begin, end, separator;
  if (!StringMember(spec, "begin", &begin) || !StringMember(spec, "end", &end) ||
      !StringMember(spec, "separator", &separator)) {
    return SpecError(prefix, "begin, end and separator must be strings");
  }
  int64_t max_calls = 0;
  RETURN_IF_ERROR(CountMember(spec, "max_calls", prefix, &max_calls));
  auto calls = spec.find("calls");
  if (calls == spec.end() || !calls->is_array() || calls->empty()) {
    return SpecError(prefix, "calls must be a non-empty array");
  }

  Grammar g;
  const int32_t root = g.AddRule("root");
  const int32_t call = g.AddRule("call");
  std::vector<Expr> alternatives;
  for (size_t i = 0; i < calls->size(); ++i) {
    const Json& c = (*calls)[i];
    const std::string field = absl::StrCat("calls[", i, "]");
    if (!c.is_object()) return SpecError(prefix, absl::StrCat(field, " must be an object"));
    std::string before, after;
    if (!StringMember(c, "before", &before) || !StringMember(c, "after", &after)) {
      return SpecError(prefix, absl::StrCat(field, ": before and after must be strings"));
    }
    Grammar arguments;
    auto schema = c.find("arguments");
    if (schema == c.end() || schema->is_null()) {
      arguments = AnyJsonGrammar(/*object_only=*/true, options);
    } else {
      absl::StatusOr<Grammar> converted = JsonSchemaToGrammar(schema->dump(), options);
      if (!converted.ok()) {
        std::string message(converted.status().message());
        if (message.rfind("json_schema: ", 0) == 0) message.erase(0, 13);
        return SpecError(prefix, absl::StrCat(field, ".arguments: ", message));
      }
      arguments = *std::move(converted);
    }
    const int32_t args = EmbedGrammar(std::move(arguments), absl::StrCat("call", i, "-"), &g);
    alternatives.push_back(Seq({Literal(before), Ref(args), Literal(after)}));
  }
  g.rules[call].body = Choice(std::move(alternatives));
  const int32_t more = max_calls == 0 ? -1 : static_cast<int32_t>(max_calls - 1);
  g.rules[root].body =
      Seq({Literal(begin), Ref(call), Repeat(Seq({Literal(separator), Ref(call)}), 0, more), Literal(end)});
  g.root = root;
  return g;
}

}  // namespace

absl::StatusOr<Grammar> ToolCallsGrammar(std::string_view text, const JsonSchemaOptions& options) {
  constexpr std::string_view kPrefix = "tool_calls: ";
  ASSIGN_OR_RETURN(const Json spec, ParseSpec(text, kPrefix));
  return ToolCallsFromSpec(spec, options, kPrefix);
}

absl::StatusOr<Grammar> TriggeredToolCallsGrammar(std::string_view text, const JsonSchemaOptions& options) {
  constexpr std::string_view kPrefix = "triggered: ";
  ASSIGN_OR_RETURN(const Json spec, ParseSpec(text, kPrefix));
  if (!spec.is_object()) return SpecError(kPrefix, "the spec must be a JSON object");
  for (const auto& [key, value] : spec.items()) {
    if (key != "trigger" && key != "avoid" && key != "max_triggers" && key != "tool_calls") {
      return SpecError(kPrefix, absl::StrCat("unknown field '", key, "'"));
    }
  }
  std::string trigger;
  if (!StringMember(spec, "trigger", &trigger) || trigger.empty()) {
    return SpecError(kPrefix, "trigger must be a non-empty string");
  }
  std::vector<std::string> avoid;
  if (auto it = spec.find("avoid"); it != spec.end() && !it->is_null()) {
    if (!it->is_array()) return SpecError(kPrefix, "avoid must be an array of non-empty strings");
    for (const Json& word : *it) {
      if (!word.is_string() || word.get<std::string>().empty()) {
        return SpecError(kPrefix, "avoid must be an array of non-empty strings");
      }
      avoid.push_back(word.get<std::string>());
    }
  }
  int64_t total = static_cast<int64_t>(trigger.size());
  for (const std::string& word : avoid) total += static_cast<int64_t>(word.size());
  if (total > kMaxFreeTextBytes) {
    return SpecError(kPrefix,
                     absl::StrCat("trigger and avoid are ", total, " bytes; the limit is ", kMaxFreeTextBytes));
  }
  int64_t max_triggers = 0;
  RETURN_IF_ERROR(CountMember(spec, "max_triggers", kPrefix, &max_triggers));
  auto body_spec = spec.find("tool_calls");
  if (body_spec == spec.end()) return SpecError(kPrefix, "tool_calls is required");
  ASSIGN_OR_RETURN(Grammar body, ToolCallsFromSpec(*body_spec, options, "triggered: tool_calls: "));

  Grammar g;
  const int32_t root = g.AddRule("root");
  const int32_t calls = EmbedGrammar(std::move(body), "calls-", &g);
  std::vector<std::string> avoid_all = avoid;
  avoid_all.push_back(trigger);
  g.rules[root].body = Seq({Repeat(Seq({FreeText(avoid, trigger), Ref(calls)}), 0,
                                   max_triggers == 0 ? -1 : static_cast<int32_t>(max_triggers)),
                            FreeText(avoid_all)});
  g.root = root;
  return g;
}

}  // namespace moeserve::structured

#include "server/structured/tool_calls_grammar.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace moeserve::structured {
namespace {

using Json = nlohmann::ordered_json;

absl::Status SpecError(std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("tool_calls: ", std::string(message)));
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

}  // namespace

int32_t EmbedGrammar(Grammar from, std::string_view prefix, Grammar* into) {
  const int32_t offset = static_cast<int32_t>(into->rules.size());
  for (Rule& rule : from.rules) {
    ShiftRefs(offset, &rule.body);
    into->rules.push_back({absl::StrCat(std::string(prefix), rule.name), std::move(rule.body)});
  }
  return offset + from.root;
}

absl::StatusOr<Grammar> ToolCallsGrammar(std::string_view text, const JsonSchemaOptions& options) {
  Json spec;
  try {
    spec = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return SpecError(absl::StrCat("invalid JSON: ", e.what()));
  }
  if (!spec.is_object()) return SpecError("the spec must be a JSON object");
  for (const auto& [key, value] : spec.items()) {
    if (key != "begin" && key != "end" && key != "separator" && key != "max_calls" && key != "calls") {
      return SpecError(absl::StrCat("unknown field '", key, "'"));
    }
  }
  std::string begin, end, separator;
  if (!StringMember(spec, "begin", &begin) || !StringMember(spec, "end", &end) ||
      !StringMember(spec, "separator", &separator)) {
    return SpecError("begin, end and separator must be strings");
  }
  int64_t max_calls = 0;
  if (auto it = spec.find("max_calls"); it != spec.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 1024) {
      return SpecError("max_calls must be an integer in [0, 1024]");
    }
    max_calls = it->get<int64_t>();
  }
  auto calls = spec.find("calls");
  if (calls == spec.end() || !calls->is_array() || calls->empty()) {
    return SpecError("calls must be a non-empty array");
  }

  Grammar g;
  const int32_t root = g.AddRule("root");
  const int32_t call = g.AddRule("call");
  std::vector<Expr> alternatives;
  for (size_t i = 0; i < calls->size(); ++i) {
    const Json& c = (*calls)[i];
    const std::string field = absl::StrCat("calls[", i, "]");
    if (!c.is_object()) return SpecError(absl::StrCat(field, " must be an object"));
    std::string before, after;
    if (!StringMember(c, "before", &before) || !StringMember(c, "after", &after)) {
      return SpecError(absl::StrCat(field, ": before and after must be strings"));
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
        return SpecError(absl::StrCat(field, ".arguments: ", message));
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

}  // namespace moeserve::structured

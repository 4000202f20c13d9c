#include "server/api/openai/response_format.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/serving/errors.h"

namespace moeserve::api::openai {

absl::StatusOr<structured::Constraint> ParseResponseFormat(const nlohmann::json& body) {
  structured::Constraint constraint;
  auto it = body.find("response_format");
  if (it == body.end() || it->is_null()) return constraint;
  const nlohmann::json& format = *it;
  if (!format.is_object()) {
    return serving::InvalidField("response_format", " must be an object with a type");
  }
  auto type = format.find("type");
  if (type == format.end() || !type->is_string()) {
    return serving::InvalidField("response_format.type", " must be one of \"text\", \"json_object\", \"json_schema\"");
  }
  const std::string kind = type->get<std::string>();
  for (const auto& [key, value] : format.items()) {
    if (key != "type" && !(key == "json_schema" && kind == "json_schema")) {
      return serving::InvalidField(absl::StrCat("response_format.", key),
                                   absl::StrCat(": not a field of response_format type \"", kind, "\""));
    }
  }
  if (kind == "text") return constraint;
  if (kind == "json_object") {
    constraint.kind = structured::Constraint::Kind::kJsonObject;
    return constraint;
  }
  if (kind != "json_schema") {
    return serving::InvalidField(
        "response_format.type",
        absl::StrCat(": must be one of \"text\", \"json_object\", \"json_schema\", got \"", kind, "\""));
  }
  auto spec = format.find("json_schema");
  if (spec == format.end() || !spec->is_object()) {
    return serving::InvalidField("response_format.json_schema", " must be an object with a name and a schema");
  }
  for (const auto& [key, value] : spec->items()) {
    if (key != "name" && key != "schema" && key != "strict" && key != "description") {
      return serving::InvalidField(absl::StrCat("response_format.json_schema.", key),
                                   ": not one of name, schema, strict, description");
    }
  }
  auto name = spec->find("name");
  if (name == spec->end() || !name->is_string() || name->get<std::string>().empty()) {
    return serving::InvalidField("response_format.json_schema.name", " must be a non-empty string");
  }
  auto strict = spec->find("strict");
  if (strict != spec->end() && !strict->is_null() && !strict->is_boolean()) {
    return serving::InvalidField("response_format.json_schema.strict", " must be a boolean");
  }
  auto schema = spec->find("schema");
  if (schema == spec->end() || !(schema->is_object() || schema->is_boolean())) {
    return serving::InvalidField("response_format.json_schema.schema", " must be a JSON Schema (an object)");
  }
  constraint.kind = structured::Constraint::Kind::kJsonSchema;
  constraint.value = schema->dump();
  return constraint;
}

absl::Status ReadResponseFormat(const nlohmann::json& body, serving::ServingRequest* request) {
  absl::StatusOr<structured::Constraint> constraint = ParseResponseFormat(body);
  if (!constraint.ok()) return constraint.status();
  if (!constraint->active()) return absl::OkStatus();
  // Compiled by the serving layer (serving::StructuredOutput), whose errors name these fields.
  request->sampling.constraint = *std::move(constraint);
  request->names.renamed.emplace_back("json_object", "response_format");
  request->names.renamed.emplace_back("json_schema", "response_format.json_schema.schema");
  return absl::OkStatus();
}

}  // namespace moeserve::api::openai

#include "server/tokenizer/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/tokenizer/template/ast.h"
#include "server/tokenizer/template/interpreter.h"
#include "server/tokenizer/template/parser.h"
#include "server/tokenizer/unicode.h"

namespace moeserve {

using json = nlohmann::ordered_json;

struct ChatTemplate::Tree {
  jinja::NodeList nodes;
};

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view source) {
  const size_t bad = FindInvalidUtf8(source);
  if (bad != source.size()) {
    return absl::InvalidArgumentError(absl::StrCat("chat template is not valid UTF-8 (byte ", bad, ")"));
  }
  auto tree = std::make_shared<Tree>();
  ASSIGN_OR_RETURN(tree->nodes, jinja::ParseTemplate(source));
  return ChatTemplate(std::move(tree));
}

absl::StatusOr<std::string> ChatTemplate::Render(const json& messages, bool add_generation_prompt,
                                                 const json& extra_context, const ChatRenderControl& control) const {
  if (!messages.is_array()) return absl::InvalidArgumentError("messages must be a JSON array");
  if (!extra_context.is_null() && !extra_context.is_object()) {
    return absl::InvalidArgumentError("extra template context must be a JSON object");
  }
  jinja::RenderLimits limits;
  limits.deadline = control.deadline;
  limits.cancelled = control.cancelled;
  // Leaves the template a few levels to nest the variables in.
  const int max_depth = limits.max_value_depth - 8;
  jinja::Dict context;
  ASSIGN_OR_RETURN(jinja::Value message_list, jinja::Value::FromJson(messages, max_depth));
  context.Set("messages", std::move(message_list));
  context.Set("add_generation_prompt", jinja::Value(add_generation_prompt));
  if (extra_context.is_object()) {
    for (const auto& [k, v] : extra_context.items()) {
      auto value = jinja::Value::FromJson(v, max_depth);
      if (!value.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("'", k, "': ", value.status().message()));
      }
      context.Set(k, *std::move(value));
    }
  }
  return jinja::Render(tree_->nodes, context, limits);
}

namespace {

// A special token in tokenizer_config.json: a string or an AddedToken object.
std::optional<std::string> TokenString(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    const auto content = it->find("content");
    if (content != it->end() && content->is_string()) return content->get<std::string>();
  }
  return std::nullopt;
}

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What apply_chat_template does to messages before rendering: drops keys whose value is None, then
// _alias_reasoning_fields: {"thinking": r, **message, "reasoning_content": r}.
json NormalizeMessages(const json& messages) {
  json out = json::array();
  for (const json& with_nulls : messages) {
    json m = json::object();
    for (const auto& [k, v] : with_nulls.items()) {
      if (!v.is_null()) m[k] = v;
    }
    const json* reasoning = nullptr;
    for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
      const auto it = m.find(key);
      if (it != m.end() && !it->is_null()) {
        reasoning = &*it;
        break;
      }
    }
    if (reasoning == nullptr) {
      out.push_back(m);
      continue;
    }
    json aliased = json::object();
    aliased["thinking"] = *reasoning;
    for (const auto& [k, v] : m.items()) aliased[k] = v;
    aliased["reasoning_content"] = *reasoning;
    out.push_back(std::move(aliased));
  }
  return out;
}

}  // namespace

absl::StatusOr<TokenizerChatTemplate> TokenizerChatTemplate::FromTokenizerConfig(std::string_view config_json) {
  json config = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) return absl::InvalidArgumentError("tokenizer_config.json is not a JSON object");
  TokenizerChatTemplate result;
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    if (auto s = TokenString(config, key)) result.special_tokens_[key] = *s;
  }
  const auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) {
    return absl::NotFoundError("tokenizer_config.json has no chat_template");
  }
  auto parse = [](const json& source, const std::string& what) -> absl::StatusOr<std::shared_ptr<const ChatTemplate>> {
    if (!source.is_string()) return absl::InvalidArgumentError(absl::StrCat(what, " is not a string"));
    auto parsed = ChatTemplate::Parse(source.get<std::string>());
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": ", parsed.status().message()));
    }
    return std::make_shared<const ChatTemplate>(*std::move(parsed));
  };
  if (it->is_string()) {
    ASSIGN_OR_RETURN(result.default_, parse(*it, "chat_template"));
    result.source_ = it->get<std::string>();
    return result;
  }
  if (!it->is_array()) return absl::InvalidArgumentError("chat_template must be a string or a list");
  for (const json& entry : *it) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") || !entry["name"].is_string()) {
      return absl::InvalidArgumentError("chat_template list entries must be {name, template}");
    }
    const std::string name = entry["name"].get<std::string>();
    ASSIGN_OR_RETURN(auto parsed, parse(entry["template"], absl::StrCat("chat_template '", name, "'")));
    absl::StrAppend(&result.source_, result.source_.empty() ? "" : "\n", entry["template"].get<std::string>());
    if (name == "default") result.default_ = parsed;
    if (name == "tool_use") result.tool_use_ = parsed;
  }
  return result;
}

absl::StatusOr<TokenizerChatTemplate> TokenizerChatTemplate::FromDirectory(const std::string& dir) {
  const std::filesystem::path root(dir);
  ASSIGN_OR_RETURN(std::string config, ReadFile(root / "tokenizer_config.json"));
  const std::filesystem::path jinja_file = root / "chat_template.jinja";
  if (!std::filesystem::exists(jinja_file)) return FromTokenizerConfig(config);
  ASSIGN_OR_RETURN(std::string source, ReadFile(jinja_file));
  json parsed = json::parse(config, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return absl::InvalidArgumentError("tokenizer_config.json is not a JSON object");
  parsed["chat_template"] = source;
  return FromTokenizerConfig(parsed.dump());
}

absl::StatusOr<std::string> TokenizerChatTemplate::Apply(const ChatRequest& request) const {
  if (!request.messages.is_array()) return absl::InvalidArgumentError("messages must be a JSON array");
  if (request.messages.empty()) {
    return absl::InvalidArgumentError("cannot apply a chat template to an empty conversation");
  }
  for (const json& m : request.messages) {
    if (!m.is_object()) return absl::InvalidArgumentError("chat messages must be JSON objects");
  }
  if (!request.tools.is_null() && !request.tools.is_array()) {
    return absl::InvalidArgumentError("tools must be a JSON array");
  }
  if (!request.extra.is_null() && !request.extra.is_object()) {
    return absl::InvalidArgumentError("extra template variables must be a JSON object");
  }
  const ChatTemplate* chosen = default_.get();
  if (!request.tools.is_null() && tool_use_ != nullptr) chosen = tool_use_.get();
  if (chosen == nullptr) {
    return absl::FailedPreconditionError("no 'default' chat template (and no tools for 'tool_use')");
  }
  json context = json::object();
  context["tools"] = request.tools;
  context["documents"] = nullptr;
  for (const auto& [k, v] : special_tokens_.items()) context[k] = v;
  if (request.extra.is_object()) {
    for (const auto& [k, v] : request.extra.items()) context[k] = v;
  }
  return chosen->Render(NormalizeMessages(request.messages), request.add_generation_prompt, context, request.control);
}

}  // namespace moeserve

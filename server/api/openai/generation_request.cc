#include "server/api/openai/generation_request.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/serving/errors.h"

namespace moeserve::api::openai {
namespace {

constexpr int64_t kI32 = std::numeric_limits<int32_t>::max();
// Prompts in one completions request (each is a request of its own in the engine).
constexpr size_t kMaxPrompts = 256;

std::vector<const char*> With(std::vector<const char*> extra) {
  std::vector<const char*> all = CommonParamNames();
  all.insert(all.end(), extra.begin(), extra.end());
  return all;
}

absl::StatusOr<StreamOptions> ReadStream(const Json& body) {
  StreamOptions out;
  absl::StatusOr<std::optional<bool>> stream = GetBool(body, "stream");
  if (!stream.ok()) return stream.status();
  out.stream = stream->value_or(false);
  auto it = body.find("stream_options");
  if (it == body.end() || it->is_null()) return out;
  if (!out.stream) {
    return serving::InvalidField("stream_options", " is only allowed when stream is true");
  }
  if (!it->is_object()) return serving::InvalidField("stream_options", " must be an object");
  for (const auto& [key, value] : it->items()) {
    if (key != "include_usage") {
      return serving::InvalidField(absl::StrCat("stream_options.", key),
                                   ": this option is not supported on this server");
    }
  }
  absl::StatusOr<std::optional<bool>> usage = GetBool(*it, "include_usage");
  if (!usage.ok()) {
    return serving::InvalidField("stream_options.include_usage", " must be a boolean");
  }
  out.include_usage = usage->value_or(false);
  return out;
}

absl::StatusOr<std::vector<int32_t>> TokenIds(const Json& v, const std::string& field) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number_integer()) {
      return serving::InvalidField(absl::StrCat(field, "[", i, "]"), " must be a token id");
    }
    const int64_t id = v[i].get<int64_t>();
    ids.push_back(id < std::numeric_limits<int32_t>::min() || id > kI32 ? -1 : static_cast<int32_t>(id));
  }
  return ids;
}

// The prompt forms of /v1/completions: "text", ["text", ...], [ids...], [[ids...], ...].
absl::StatusOr<std::vector<std::pair<serving::PromptInput, std::string>>> Prompts(const Json& body,
                                                                                  bool add_special_tokens) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return serving::InvalidField("prompt", " is required");
  const Json& prompt = *it;
  std::vector<std::pair<serving::PromptInput, std::string>> out;
  if (prompt.is_string()) {
    out.emplace_back(serving::TextPrompt{prompt.get<std::string>(), add_special_tokens}, "prompt");
    return out;
  }
  if (!prompt.is_array()) {
    return serving::InvalidField("prompt", " must be a string, an array of strings, or an array of token ids");
  }
  if (prompt.empty()) return serving::InvalidField("prompt", " must not be empty");
  if (prompt[0].is_number_integer()) {
    absl::StatusOr<std::vector<int32_t>> ids = TokenIds(prompt, "prompt");
    if (!ids.ok()) return ids.status();
    out.emplace_back(serving::TokenPrompt{*std::move(ids)}, "prompt");
    return out;
  }
  if (prompt.size() > kMaxPrompts) {
    return serving::InvalidField("prompt",
                                 absl::StrCat(" may hold at most ", kMaxPrompts, " prompts, got ", prompt.size()));
  }
  for (size_t i = 0; i < prompt.size(); ++i) {
    const std::string field = absl::StrCat("prompt[", i, "]");
    if (prompt[i].is_string()) {
      out.emplace_back(serving::TextPrompt{prompt[i].get<std::string>(), add_special_tokens}, field);
    } else if (prompt[i].is_array()) {
      absl::StatusOr<std::vector<int32_t>> ids = TokenIds(prompt[i], field);
      if (!ids.ok()) return ids.status();
      out.emplace_back(serving::TokenPrompt{*std::move(ids)}, field);
    } else {
      return serving::InvalidField(field, " must be a string or an array of token ids");
    }
  }
  return out;
}

std::string ContentText(const Json& content, const std::string& field, absl::Status* error) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    *error = serving::InvalidField(field, " must be a string or an array of content parts");
    return "";
  }
  std::string text;
  for (size_t j = 0; j < content.size(); ++j) {
    const Json& part = content[j];
    const std::string part_field = absl::StrCat(field, "[", j, "]");
    const auto type = part.is_object() ? part.find("type") : part.end();
    if (!part.is_object() || type == part.end() || !type->is_string()) {
      *error = serving::InvalidField(part_field, " must be an object with a type");
      return "";
    }
    if (*type != "text") {
      *error = serving::InvalidField(absl::StrCat(part_field, ".type"),
                                     absl::StrCat(": content parts of type '", type->get<std::string>(),
                                                  "' are not supported (this server takes text)"));
      return "";
    }
    const auto t = part.find("text");
    if (t == part.end() || !t->is_string()) {
      *error = serving::InvalidField(absl::StrCat(part_field, ".text"), " must be a string");
      return "";
    }
    if (j > 0) text += "\n";
    text += t->get<std::string>();
  }
  return text;
}

}  // namespace

absl::StatusOr<serving::ChatPrompt> ParseConversation(const Json& body) {
  serving::ChatPrompt chat;
  auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty()) {
    return serving::InvalidField("messages", " must be a non-empty array of messages");
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& m = (*it)[i];
    const std::string field = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return serving::InvalidField(field, " must be an object");
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return serving::InvalidField(absl::StrCat(field, ".role"), " must be a string");
    }
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for system instructions
    if (r != "system" && r != "user" && r != "assistant" && r != "tool") {
      return serving::InvalidField(absl::StrCat(field, ".role"),
                                   absl::StrCat(": '", r, "' is not one of system, developer, user, assistant, tool"));
    }
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    out["role"] = r;
    const auto content = m.find("content");
    const bool has_tool_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (content == m.end() || content->is_null()) {
      if (r != "assistant" || !has_tool_calls) {
        return serving::InvalidField(absl::StrCat(field, ".content"), " is required");
      }
      out["content"] = "";
    } else {
      absl::Status error;
      out["content"] = ContentText(*content, absl::StrCat(field, ".content"), &error);
      if (!error.ok()) return error;
    }
    for (const auto& [key, value] : m.items()) {
      if (key == "role" || key == "content") continue;
      if (key == "name" || key == "tool_call_id" || key == "reasoning_content" ||
          (key == "tool_calls" && r == "assistant")) {
        if (key == "tool_calls" && !value.is_null() && !value.is_array()) {
          return serving::InvalidField(absl::StrCat(field, ".tool_calls"), " must be an array");
        }
        out[key] = nlohmann::ordered_json::parse(value.dump());
        continue;
      }
      return serving::InvalidField(absl::StrCat(field, ".", key),
                                   ": this message field is not supported on this server");
    }
    chat.messages.push_back(std::move(out));
  }
  if (auto tools = body.find("tools"); tools != body.end() && !tools->is_null()) {
    if (!tools->is_array()) return serving::InvalidField("tools", " must be an array");
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& t = (*tools)[i];
      const std::string field = absl::StrCat("tools[", i, "]");
      if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") ||
          !t["function"].is_object() || !t["function"].contains("name") || !t["function"]["name"].is_string()) {
        return serving::InvalidField(field, " must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
      }
      const Json& function = t["function"];
      if (auto p = function.find("parameters"); p != function.end() && !p->is_null() && !p->is_object()) {
        return serving::InvalidField(absl::StrCat(field, ".function.parameters"), " must be a JSON Schema object");
      }
      if (auto s = function.find("strict"); s != function.end() && !s->is_null() && !s->is_boolean()) {
        return serving::InvalidField(absl::StrCat(field, ".function.strict"), " must be a boolean");
      }
    }
    if (!tools->empty()) chat.tools = nlohmann::ordered_json::parse(tools->dump());
  }
  absl::StatusOr<std::optional<bool>> add_generation_prompt = GetBool(body, "add_generation_prompt");
  if (!add_generation_prompt.ok()) return add_generation_prompt.status();
  chat.add_generation_prompt = add_generation_prompt->value_or(true);
  if (auto kwargs = body.find("chat_template_kwargs"); kwargs != body.end() && !kwargs->is_null()) {
    if (!kwargs->is_object()) return serving::InvalidField("chat_template_kwargs", " must be an object");
    chat.template_kwargs = nlohmann::ordered_json::parse(kwargs->dump());
  }
  return chat;
}

absl::StatusOr<CompletionRequest> ParseCompletionRequest(const Json& body, const std::string& served_model) {
  if (absl::Status s = CheckSupported(
          body, With({"prompt", "max_tokens", "echo", "logprobs", "best_of", "add_special_tokens"}), "/v1/completions");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckModel(body, served_model); !s.ok()) return s;
  CompletionRequest out;
  serving::ServingRequest common;
  common.names.prompt = "prompt";
  if (absl::Status s = ReadCommonParams(body, &common); !s.ok()) return s;
  absl::StatusOr<std::optional<int64_t>> max_tokens = GetInt(body, "max_tokens", 0, kI32);
  if (!max_tokens.ok()) return max_tokens.status();
  common.sampling.max_tokens = static_cast<int32_t>(max_tokens->value_or(16));
  absl::StatusOr<std::optional<int64_t>> best_of = GetInt(body, "best_of", 1, kI32);
  if (!best_of.ok()) return best_of.status();
  if (best_of->has_value() && **best_of != common.sampling.n) {
    return serving::InvalidField(
        "best_of", absl::StrCat(": only best_of = n (", common.sampling.n, ") is supported, got ", **best_of));
  }
  absl::StatusOr<std::optional<int64_t>> logprobs = GetInt(body, "logprobs", 0, kMaxLogprobs);
  if (!logprobs.ok()) return logprobs.status();
  if (logprobs->has_value()) {
    out.logprobs = static_cast<int32_t>(**logprobs);
    common.sampling.logprobs = out.logprobs;
    common.logprob_text = true;
  }
  absl::StatusOr<std::optional<bool>> echo = GetBool(body, "echo");
  if (!echo.ok()) return echo.status();
  out.echo = echo->value_or(false);
  // Echoed prompts carry their tokens' logprobs as well.
  if (out.echo && out.logprobs.has_value()) common.sampling.prompt_logprobs = out.logprobs;
  absl::StatusOr<std::optional<bool>> add_special = GetBool(body, "add_special_tokens");
  if (!add_special.ok()) return add_special.status();
  absl::StatusOr<StreamOptions> stream = ReadStream(body);
  if (!stream.ok()) return stream.status();
  out.stream = *stream;

  absl::StatusOr<std::vector<std::pair<serving::PromptInput, std::string>>> prompts =
      Prompts(body, add_special->value_or(true));
  if (!prompts.ok()) return prompts.status();
  for (auto& [prompt, field] : *prompts) {
    serving::ServingRequest r = common;
    r.prompt = std::move(prompt);
    r.names.prompt = field;
    out.prompts.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<ChatCompletionRequest> ParseChatRequest(const Json& body, const std::string& served_model) {
  if (absl::Status s =
          CheckSupported(body,
                         With({"messages", "max_tokens", "max_completion_tokens", "logprobs", "top_logprobs", "tools",
                               "tool_choice", "parallel_tool_calls", "chat_template_kwargs", "add_generation_prompt"}),
                         "/v1/chat/completions");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckModel(body, served_model); !s.ok()) return s;
  ChatCompletionRequest out;
  serving::ServingRequest& r = out.request;
  r.names.prompt = "messages";
  if (absl::Status s = ReadCommonParams(body, &r); !s.ok()) return s;
  absl::StatusOr<serving::ChatPrompt> chat = ParseConversation(body);
  if (!chat.ok()) return chat.status();
  const bool has_tools = !chat->tools.is_null();
  r.prompt = *std::move(chat);

  // max_completion_tokens (OpenAI's newer name) wins; neither: what the context leaves.
  absl::StatusOr<std::optional<int64_t>> max_tokens = GetInt(body, "max_tokens", 0, kI32);
  if (!max_tokens.ok()) return max_tokens.status();
  absl::StatusOr<std::optional<int64_t>> max_completion = GetInt(body, "max_completion_tokens", 0, kI32);
  if (!max_completion.ok()) return max_completion.status();
  if (max_completion->has_value()) {
    r.sampling.max_tokens = static_cast<int32_t>(**max_completion);
    r.names.renamed.emplace_back("max_tokens", "max_completion_tokens");
  } else if (max_tokens->has_value()) {
    r.sampling.max_tokens = static_cast<int32_t>(**max_tokens);
  } else {
    r.max_tokens_to_context = true;
  }

  absl::StatusOr<std::optional<bool>> logprobs = GetBool(body, "logprobs");
  if (!logprobs.ok()) return logprobs.status();
  out.logprobs = logprobs->value_or(false);
  absl::StatusOr<std::optional<int64_t>> top = GetInt(body, "top_logprobs", 0, kMaxLogprobs);
  if (!top.ok()) return top.status();
  if (top->has_value() && !out.logprobs) {
    return serving::InvalidField("top_logprobs", " needs logprobs to be true");
  }
  out.top_logprobs = static_cast<int32_t>(top->value_or(0));
  if (out.logprobs) {
    r.sampling.logprobs = out.top_logprobs;
    r.logprob_text = true;
    r.names.renamed.emplace_back("logprobs", "top_logprobs");
  }

  // tool_choice (tool_choice.h): a forced call, or a call under "auto" with strict tools, is
  // constrained by the router, which knows the model's tool-call format.
  const Json tools = has_tools ? body.at("tools") : Json();
  absl::StatusOr<ToolChoice> tool_choice = ParseToolChoice(body, tools);
  if (!tool_choice.ok()) return tool_choice.status();
  out.tool_choice = *std::move(tool_choice);
  out.parse_tool_calls = out.tool_choice.mode != ToolChoice::Mode::kNone;
  if (out.tool_choice.forced()) {
    if (r.sampling.constraint.active()) {
      return serving::InvalidField("tool_choice", ": a forced tool call cannot be combined with response_format");
    }
    out.tools = tools;
  } else if (out.tool_choice.mode == ToolChoice::Mode::kAuto && !r.sampling.constraint.active()) {
    out.tools = tools;
  }
  absl::StatusOr<std::optional<bool>> parallel = GetBool(body, "parallel_tool_calls");
  if (!parallel.ok()) return parallel.status();
  out.parallel_tool_calls = parallel->value_or(true);

  absl::StatusOr<StreamOptions> stream = ReadStream(body);
  if (!stream.ok()) return stream.status();
  out.stream = *stream;
  return out;
}

}  // namespace moeserve::api::openai

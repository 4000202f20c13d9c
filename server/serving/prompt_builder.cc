#include "server/serving/prompt_builder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace moeserve::serving {

PromptBuilder::PromptBuilder(const Tokenizer* tokenizer, std::optional<TokenizerChatTemplate> chat)
    : tokenizer_(tokenizer), chat_(tokenizer != nullptr ? std::move(chat) : std::nullopt) {}

std::optional<TokenizerChatTemplate> PromptBuilder::LoadChatTemplate(const std::string& dir) {
  if (dir.empty()) return std::nullopt;
  absl::StatusOr<TokenizerChatTemplate> chat = TokenizerChatTemplate::FromDirectory(dir);
  if (chat.ok()) return std::move(*chat);
  if (!absl::IsNotFound(chat.status())) {
    MS_LOG(WARNING) << "chat template unusable, `messages` requests will be refused: " << chat.status();
  }
  return std::nullopt;
}

const std::string& PromptBuilder::chat_template_source() const {
  static const std::string* const kNone = new std::string;
  return chat_.has_value() ? chat_->source() : *kNone;
}

absl::StatusOr<std::vector<int32_t>> PromptBuilder::Encode(const std::string& text, bool add_special,
                                                           const std::string& field) const {
  if (tokenizer_ == nullptr) {
    return FieldError(absl::StatusCode::kFailedPrecondition, field,
                      ": this model has no tokenizer (tokenizer.json); send token ids");
  }
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer_->Encode(text, add_special);
  if (!ids.ok()) {
    return InvalidField(field, absl::StrCat(": cannot tokenize: ", ids.status().message()));
  }
  return ids;
}

absl::StatusOr<std::string> PromptBuilder::Render(const ChatPrompt& chat, const FieldNames& names,
                                                  const ChatRenderControl& control) const {
  const std::string& field = names.prompt;
  if (!chat_.has_value()) {
    return FieldError(absl::StatusCode::kFailedPrecondition, field,
                      ": this model has no chat template (tokenizer_config.json); send text or "
                      "token ids");
  }
  if (!chat.messages.is_array() || chat.messages.empty()) {
    return InvalidField(field, ": at least one message is required");
  }
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    const nlohmann::ordered_json& m = chat.messages[i];
    const auto role = m.is_object() ? m.find("role") : m.end();
    if (!m.is_object() || role == m.end() || !role->is_string() || role->get_ref<const std::string&>().empty()) {
      return InvalidField(absl::StrCat(field, "[", i, "].role"), " must not be empty");
    }
  }
  ChatRequest request;
  request.messages = chat.messages;
  request.tools = chat.tools;
  request.add_generation_prompt = chat.add_generation_prompt;
  if (chat.template_kwargs.is_object()) request.extra = chat.template_kwargs;
  request.control = control;
  absl::StatusOr<std::string> text = chat_->Apply(request);
  if (absl::IsCancelled(text.status()) || absl::IsDeadlineExceeded(text.status())) {
    return text.status();  // the caller gave up: nothing wrong with the messages
  }
  if (!text.ok()) {
    return InvalidField(field, absl::StrCat(": the chat template cannot render them: ", text.status().message()));
  }
  return text;
}

absl::StatusOr<BuiltPrompt> PromptBuilder::Build(const PromptInput& input, const FieldNames& names,
                                                 const ChatRenderControl& control) const {
  BuiltPrompt prompt;
  if (const auto* text = std::get_if<TextPrompt>(&input)) {
    absl::StatusOr<std::vector<int32_t>> ids = Encode(text->text, text->add_special_tokens, names.prompt);
    if (!ids.ok()) return ids.status();
    prompt.ids = std::move(*ids);
    prompt.text = text->text;
  } else if (const auto* tokens = std::get_if<TokenPrompt>(&input)) {
    prompt.ids = tokens->ids;
  } else {
    absl::StatusOr<std::string> rendered = Render(std::get<ChatPrompt>(input), names, control);
    if (!rendered.ok()) return rendered.status();
    absl::StatusOr<std::vector<int32_t>> ids = Encode(*rendered, /*add_special=*/false, names.prompt);
    if (!ids.ok()) return ids.status();
    prompt.ids = std::move(*ids);
    prompt.text = std::move(*rendered);
  }
  return prompt;
}

}  // namespace moeserve::serving

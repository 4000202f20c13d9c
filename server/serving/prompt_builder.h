#ifndef MOESERVE_SERVER_SERVING_PROMPT_BUILDER_H_
#define MOESERVE_SERVER_SERVING_PROMPT_BUILDER_H_

// PromptBuilder: the token ids of a prompt given as text, ids or chat messages (rendered with the
// model's chat template). Errors name the prompt field as the client spelled it.
//
// Immutable after construction; safe for concurrent use. The tokenizer must outlive it.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/serving/errors.h"
#include "server/serving/serving_request.h"
#include "server/tokenizer/chat_template.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve::serving {

struct BuiltPrompt {
  std::vector<int32_t> ids;
  // The prompt's text: the text given, or the rendered conversation; empty for ids.
  std::string text;
};

class PromptBuilder {
 public:
  // `tokenizer` may be null (ids only); `chat` may be absent (no chat template).
  PromptBuilder(const Tokenizer* tokenizer, std::optional<TokenizerChatTemplate> chat);

  // The chat template of the tokenizer directory `dir`: absent when it has none (NotFound) or
  // when it is unusable (logged: `messages` requests are then refused).
  static std::optional<TokenizerChatTemplate> LoadChatTemplate(const std::string& dir);

  // Errors: FailedPrecondition (text without a tokenizer, messages without a chat template),
  // InvalidArgument (text that cannot be tokenized, messages the template cannot render),
  // Cancelled / DeadlineExceeded (from `control`: the caller gave up while the template rendered).
  // The ids are not checked against the vocabulary or the context (ValidatePromptIds).
  absl::StatusOr<BuiltPrompt> Build(const PromptInput& input, const FieldNames& names,
                                    const ChatRenderControl& control = {}) const;

  // The conversation rendered to text (no tokenization).
  absl::StatusOr<std::string> Render(const ChatPrompt& chat, const FieldNames& names,
                                     const ChatRenderControl& control = {}) const;

  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  bool has_chat_template() const { return chat_.has_value(); }
  // The chat template's text ("" without one), e.g. to choose the output parsers.
  const std::string& chat_template_source() const;
  const Tokenizer* tokenizer() const { return tokenizer_; }

 private:
  absl::StatusOr<std::vector<int32_t>> Encode(const std::string& text, bool add_special,
                                              const std::string& field) const;

  const Tokenizer* const tokenizer_;
  const std::optional<TokenizerChatTemplate> chat_;
};

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_PROMPT_BUILDER_H_

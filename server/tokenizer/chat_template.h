#ifndef MOESERVE_SERVER_TOKENIZER_CHAT_TEMPLATE_H_
#define MOESERVE_SERVER_TOKENIZER_CHAT_TEMPLATE_H_

// Chat templates: the Jinja2 `chat_template` of tokenizer_config.json rendered as transformers'
// apply_chat_template(..., tokenize=False) renders it. The interpreter (server/tokenizer/template/)
// implements the Jinja2 subset chat templates use; a template outside it fails in Parse, with the
// line and column of the offending construct.
//
// Message and tool objects are nlohmann::ordered_json so that key order, which `tojson` output
// depends on, is the caller's order, as with Python dicts.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace moeserve {

namespace jinja {
struct Node;
}  // namespace jinja

// What stops a render early besides its own bounds. Every render is bounded by an evaluation
// budget (every statement, expression, loop iteration and built-in's work is counted; ~1 s of
// CPU at most), 10 s of wall-clock time and a 16 MiB result (template/budget.h); passing those is
// InvalidArgument.
struct ChatRenderControl {
  absl::Time deadline = absl::InfiniteFuture();  // past it: DeadlineExceeded
  std::function<bool()> cancelled;               // polled often (well under 1 ms); true: Cancelled
};

// A parsed template. Immutable; safe for concurrent use; cheap to copy (shares the tree).
class ChatTemplate {
 public:
  // InvalidArgument("chat template line L, column C: ...") for syntax errors and for anything the
  // interpreter does not support (statements, filters, tests, methods, functions).
  static absl::StatusOr<ChatTemplate> Parse(std::string_view source);

  // Renders with the variables messages, add_generation_prompt and every key of
  // `extra_context` (an object, or null): tools, documents, bos_token, enable_thinking, ...
  // Errors (raise_exception, undefined values used, type errors, a spent budget) are
  // InvalidArgument with the template position; DeadlineExceeded and Cancelled come from
  // `control`.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                     const nlohmann::ordered_json& extra_context,
                                     const ChatRenderControl& control = {}) const;

 private:
  struct Tree;
  explicit ChatTemplate(std::shared_ptr<const Tree> tree) : tree_(std::move(tree)) {}
  std::shared_ptr<const Tree> tree_;
};

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;  // null: no tools (the template sees None)
  bool add_generation_prompt = false;
  // More template variables, e.g. {"enable_thinking": false}; they override the special tokens.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  ChatRenderControl control;  // the caller's deadline and cancellation
};

// The chat template(s) of a tokenizer plus the special-token strings transformers passes to them
// (bos_token, eos_token, unk_token, pad_token). Immutable; safe for concurrent use.
class TokenizerChatTemplate {
 public:
  // Reads `chat_template` (a string, or a list of {name, template}) and the special tokens from
  // tokenizer_config.json. NotFound when the config has no chat template.
  static absl::StatusOr<TokenizerChatTemplate> FromTokenizerConfig(std::string_view config_json);
  // DIR/tokenizer_config.json, with DIR/chat_template.jinja taking precedence when present (newer
  // transformers save the template there).
  static absl::StatusOr<TokenizerChatTemplate> FromDirectory(const std::string& dir);

  // apply_chat_template(messages, tools=..., add_generation_prompt=..., tokenize=False, **extra)
  // as transformers 5 does it: an empty conversation is an error, message keys whose value is
  // null are dropped, reasoning fields are aliased (reasoning_content / thinking / reasoning), and
  // the "tool_use" template is chosen when tools are given and it exists.
  absl::StatusOr<std::string> Apply(const ChatRequest& request) const;

  // The template text as read (named templates joined by newlines), for feature detection such
  // as choosing the reasoning and tool-call parsers.
  const std::string& source() const { return source_; }

 private:
  TokenizerChatTemplate() = default;
  std::shared_ptr<const ChatTemplate> default_;   // may be null when only named ones exist
  std::shared_ptr<const ChatTemplate> tool_use_;  // may be null
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
  std::string source_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_CHAT_TEMPLATE_H_

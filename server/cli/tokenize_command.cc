// `moeserve tokenize`: token ids of texts (one JSON array per text), the text of ids, or the prompt
// a chat template renders. DIR needs only the tokenizer files.

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "server/cli/commands.h"
#include "server/common/mapped_file.h"
#include "server/common/status_macros.h"
#include "server/tokenizer/chat_template.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve {
namespace {

struct TokenizeOptions {
  std::string model = DefaultModelDir();
  std::string text;
  std::string jsonl;
  std::string chat;
  std::string decode;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
};

absl::Status PrintIds(const Tokenizer& tokenizer, const std::string& text, bool add_special, const std::string& where) {
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(text, add_special);
  if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", std::string(ids.status().message())));
  std::printf("[%s]\n", absl::StrJoin(*ids, ", ").c_str());
  return absl::OkStatus();
}

// Each line {"text": ...} -> one JSON array of ids, in order.
absl::Status TokenizeJsonl(const Tokenizer& tokenizer, const TokenizeOptions& o) {
  std::ifstream in(o.jsonl);
  if (!in) return absl::NotFoundError(absl::StrCat(o.jsonl, ": cannot open"));
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    const std::string where = absl::StrCat(o.jsonl, ":", n);
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": expected a JSON object with a string \"text\""));
    }
    RETURN_IF_ERROR(PrintIds(tokenizer, j["text"].get<std::string>(), o.add_special_tokens, where));
  }
  return absl::OkStatus();
}

// FILE.json holds a list of messages, or {"messages": [...], "add_generation_prompt": bool,
// "tools": [...], any other template variables}. Prints the rendered prompt.
absl::Status RenderChat(const TokenizeOptions& o) {
  ASSIGN_OR_RETURN(TokenizerChatTemplate chat_template, TokenizerChatTemplate::FromDirectory(o.model));
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(o.chat));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(o.chat, ": not valid JSON"));
  ChatRequest request;
  request.add_generation_prompt = true;
  if (j.is_array()) {
    request.messages = std::move(j);
  } else if (j.is_object() && j.contains("messages")) {
    request.messages = j["messages"];
    if (j.contains("add_generation_prompt")) {
      if (!j["add_generation_prompt"].is_boolean()) {
        return absl::InvalidArgumentError(absl::StrCat(o.chat, ": \"add_generation_prompt\" must be a boolean"));
      }
      request.add_generation_prompt = j["add_generation_prompt"].get<bool>();
    }
    if (j.contains("tools")) request.tools = j["tools"];
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() != "messages" && it.key() != "add_generation_prompt" && it.key() != "tools") {
        request.extra[it.key()] = it.value();
      }
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(o.chat, ": expected a list of messages or an object with \"messages\""));
  }
  ASSIGN_OR_RETURN(std::string prompt, chat_template.Apply(request));
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fputc('\n', stdout);
  return absl::OkStatus();
}

absl::Status Decode(const Tokenizer& tokenizer, const TokenizeOptions& o) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(o.decode, absl::ByAnyChar(", []"), absl::SkipWhitespace())) {
    int32_t id;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("--decode: \"", std::string(part), "\" is not an integer id"));
    }
    ids.push_back(id);
  }
  ASSIGN_OR_RETURN(std::string text, tokenizer.Decode(ids, o.skip_special_tokens));
  std::printf("%s\n", text.c_str());
  return absl::OkStatus();
}

absl::Status RunTokenize(const TokenizeOptions& o) {
  if (!o.chat.empty()) return RenderChat(o);
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::FromDirectory(o.model));
  if (!o.decode.empty()) return Decode(*tokenizer, o);
  if (!o.jsonl.empty()) return TokenizeJsonl(*tokenizer, o);
  return PrintIds(*tokenizer, o.text, o.add_special_tokens, "--text");
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, absl::Status* status) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Print token ids of text (a JSON array per text), decode ids, or render a chat template");
  cmd->add_option("--model", o->model, "model or tokenizer directory")->capture_default_str();
  auto* text = cmd->add_option("--text", o->text, "text to encode");
  auto* jsonl =
      cmd->add_option("--jsonl", o->jsonl, "file of {\"text\": ...} lines; one JSON array per line")->excludes(text);
  auto* chat = cmd->add_option("--chat", o->chat, "JSON file of chat messages; prints the rendered prompt")
                   ->excludes(text)
                   ->excludes(jsonl);
  cmd->add_option("--decode", o->decode, "ids to decode, e.g. 1,2,3 or [1, 2, 3]")
      ->excludes(text)
      ->excludes(jsonl)
      ->excludes(chat);
  cmd->add_flag("--add-special-tokens", o->add_special_tokens, "add BOS/EOS as tokenizer_config.json says");
  cmd->add_flag("--skip-special-tokens", o->skip_special_tokens, "with --decode: drop special tokens");
  cmd->callback([o, status] { *status = RunTokenize(*o); });
}

}  // namespace moeserve

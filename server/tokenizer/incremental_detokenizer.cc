#include "server/tokenizer/incremental_detokenizer.h"

#include <algorithm>

namespace moeserve {
namespace {

constexpr char kReplacementChar[] = "\xEF\xBF\xBD";

bool EndsWithReplacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, kReplacementChar) == 0;
}

// "<0xNN>": HF's ByteFallback decoder turns a whole run of these into U+FFFDs when the run is not
// valid UTF-8, so text decoded before the run ends may change.
bool IsByteFallbackToken(const std::optional<std::string>& token) {
  return token && token->size() == 6 && token->compare(0, 3, "<0x") == 0 && (*token)[5] == '>';
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer* tokenizer, absl::Span<const int32_t> prompt_ids,
                                               bool skip_special_tokens)
    : tokenizer_(tokenizer),
      skip_special_tokens_(skip_special_tokens),
      ids_(prompt_ids.begin(), prompt_ids.end()),
      prefix_offset_(prompt_ids.size() > kContextTokens ? prompt_ids.size() - kContextTokens : 0),
      read_offset_(prompt_ids.size()) {}

std::string IncrementalDetokenizer::DecodeRange(size_t begin, size_t end) const {
  auto text = tokenizer_->Decode(absl::MakeConstSpan(ids_).subspan(begin, end - begin), skip_special_tokens_);
  return text.ok() ? *std::move(text) : std::string();
}

std::string IncrementalDetokenizer::Step(int32_t id) {
  ids_.push_back(id);
  // A skipped special token adds no text, and must not end a byte-fallback run either.
  if (skip_special_tokens_ && tokenizer_->IsSpecial(id)) return std::string();
  if (IsByteFallbackToken(tokenizer_->IdToToken(id))) return std::string();  // run may go on
  const std::string prefix_text = DecodeRange(prefix_offset_, read_offset_);
  const std::string new_text = DecodeRange(prefix_offset_, ids_.size());
  if (new_text.size() <= prefix_text.size() || EndsWithReplacement(new_text) ||
      new_text.compare(0, prefix_text.size(), prefix_text) != 0) {
    return std::string();  // nothing complete yet
  }
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  return new_text.substr(prefix_text.size());
}

std::string IncrementalDetokenizer::Flush() {
  if (read_offset_ == ids_.size()) return std::string();
  const std::string prefix_text = DecodeRange(prefix_offset_, read_offset_);
  const std::string new_text = DecodeRange(prefix_offset_, ids_.size());
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  if (new_text.size() <= prefix_text.size() || new_text.compare(0, prefix_text.size(), prefix_text) != 0) {
    return std::string();
  }
  return new_text.substr(prefix_text.size());
}

}  // namespace moeserve

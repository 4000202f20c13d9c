#include "server/serving/structured_output.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moeserve::serving {

StructuredOutput::StructuredOutput(const Tokenizer* tokenizer, int32_t vocab_size, std::vector<int32_t> eos_token_ids,
                                   structured::ConstraintCompilerOptions options)
    : tokenizer_(tokenizer),
      vocab_size_(vocab_size),
      eos_token_ids_(std::move(eos_token_ids)),
      options_(std::move(options)) {
  if (tokenizer_ == nullptr) return;
  const std::optional<int32_t> start = tokenizer_->TokenToId("<think>");
  const std::optional<int32_t> end = tokenizer_->TokenToId("</think>");
  if (start.has_value() && end.has_value() && *start < vocab_size_ && *end < vocab_size_) {
    reasoning_ = {.start = *start, .end = *end};
  }
}

absl::StatusOr<structured::ConstraintCompiler*> StructuredOutput::compiler() {
  absl::MutexLock lock(&mu_);
  if (compiler_ == nullptr) {
    absl::StatusOr<std::shared_ptr<const structured::TokenVocabulary>> vocab =
        structured::TokenVocabulary::FromTokenizer(*tokenizer_, {.mask_size = vocab_size_, .stop_ids = eos_token_ids_});
    if (!vocab.ok()) return vocab.status();
    compiler_ = std::make_unique<structured::ConstraintCompiler>(*std::move(vocab), options_);
  }
  return compiler_.get();
}

structured::ConstraintCompiler::Stats StructuredOutput::stats() const {
  absl::MutexLock lock(&mu_);
  return compiler_ != nullptr ? compiler_->stats() : structured::ConstraintCompiler::Stats{};
}

absl::StatusOr<std::shared_ptr<const structured::OutputConstraintSpec>> StructuredOutput::Prepare(
    const SamplingParams& params, absl::Span<const int32_t> prompt_ids, const FieldNames& names) {
  const structured::Constraint& constraint = params.constraint;
  if (!constraint.active()) return nullptr;
  const std::string field = names.Sampling(structured::ConstraintFieldName(constraint.kind));
  if (tokenizer_ == nullptr) {
    return FieldError(absl::StatusCode::kFailedPrecondition, field,
                      ": structured output needs a tokenizer, and this model has none");
  }
  absl::StatusOr<structured::ConstraintCompiler*> compiler = this->compiler();
  if (!compiler.ok()) {
    return FieldError(absl::StatusCode::kFailedPrecondition, field,
                      absl::StrCat(": this model's vocabulary cannot be matched: ", compiler.status().message()));
  }
  absl::StatusOr<std::shared_ptr<const structured::CompiledGrammar>> grammar = (*compiler)->Compile(constraint);
  if (!grammar.ok()) {
    // The compiler's messages start with the constraint's own field name: the client's goes there.
    std::string message(grammar.status().message());
    const std::string own = structured::ConstraintFieldName(constraint.kind);
    if (message.rfind(own, 0) == 0) {
      message.erase(0, own.size());
    } else {
      message.insert(0, ": ");
    }
    return FieldError(grammar.status().code(), field, message);
  }
  auto spec = std::make_shared<structured::OutputConstraintSpec>();
  spec->grammar = *std::move(grammar);
  spec->reasoning = reasoning_;
  spec->starts_in_reasoning = PromptIdsOpenReasoning(prompt_ids, reasoning_);
  spec->min_tokens = params.min_tokens;
  spec->ignore_eos = params.ignore_eos;
  for (int32_t id : params.stop_token_ids) {
    if (id >= 0 && id < vocab_size_) spec->stop_token_ids.push_back(id);
  }
  std::sort(spec->stop_token_ids.begin(), spec->stop_token_ids.end());
  spec->stop_token_ids.erase(std::unique(spec->stop_token_ids.begin(), spec->stop_token_ids.end()),
                             spec->stop_token_ids.end());
  return std::shared_ptr<const structured::OutputConstraintSpec>(std::move(spec));
}

bool PromptIdsOpenReasoning(absl::Span<const int32_t> prompt_ids, const structured::ReasoningTokens& reasoning) {
  if (!reasoning.enabled()) return false;
  for (auto it = prompt_ids.rbegin(); it != prompt_ids.rend(); ++it) {
    if (*it == reasoning.end) return false;
    if (*it == reasoning.start) return true;
  }
  return false;
}

}  // namespace moeserve::serving

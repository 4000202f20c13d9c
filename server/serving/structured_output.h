#ifndef MOESERVE_SERVER_SERVING_STRUCTURED_OUTPUT_H_
#define MOESERVE_SERVER_SERVING_STRUCTURED_OUTPUT_H_

// StructuredOutput: the serving layer's side of structured output. Compiles a request's
// constraint (SamplingParams::constraint: JSON Schema, regex, GBNF, any JSON object) for the
// model's vocabulary, on the caller's thread and once per constraint (ConstraintCompiler's LRU
// cache), so that a bad or expensive constraint is refused before it reaches the engine; and
// prepares what the engine applies (EngineRequest::constraint): the compiled grammar, the model's
// reasoning tokens (<think>/</think> as single tokens: the constraint starts after the block) and
// whether the prompt leaves such a block open.
//
// The vocabulary (bytes of every token, trie) is built on the first constrained request.
// Thread-safe. The tokenizer must outlive it.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "server/sampling/sampling_params.h"
#include "server/serving/errors.h"
#include "server/structured/constraint_compiler.h"
#include "server/structured/output_constraint.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve::serving {

class StructuredOutput {
 public:
  // `tokenizer` may be null (constraints are then refused); `vocab_size`: the model's logits
  // width; `eos_token_ids`: the model's, allowed only where the output is complete.
  StructuredOutput(const Tokenizer* tokenizer, int32_t vocab_size, std::vector<int32_t> eos_token_ids,
                   structured::ConstraintCompilerOptions options = {});

  StructuredOutput(const StructuredOutput&) = delete;
  StructuredOutput& operator=(const StructuredOutput&) = delete;

  // Null when params.constraint is not active. Errors name the constraint field through `names`:
  // InvalidArgument (the constraint does not compile or exceeds a limit), FailedPrecondition (this
  // model has no tokenizer).
  absl::StatusOr<std::shared_ptr<const structured::OutputConstraintSpec>> Prepare(const SamplingParams& params,
                                                                                  absl::Span<const int32_t> prompt_ids,
                                                                                  const FieldNames& names);

  const structured::ReasoningTokens& reasoning() const { return reasoning_; }
  // The compiler's cache statistics (zero before the first constrained request).
  structured::ConstraintCompiler::Stats stats() const;

 private:
  absl::StatusOr<structured::ConstraintCompiler*> compiler();

  const Tokenizer* const tokenizer_;
  const int32_t vocab_size_;
  const std::vector<int32_t> eos_token_ids_;
  const structured::ConstraintCompilerOptions options_;
  structured::ReasoningTokens reasoning_;
  mutable absl::Mutex mu_;
  std::unique_ptr<structured::ConstraintCompiler> compiler_ ABSL_GUARDED_BY(mu_);
};

// True when the prompt's last reasoning token is `reasoning.start` (the output starts inside the
// block, as after DeepSeek-R1's generation prompt).
bool PromptIdsOpenReasoning(absl::Span<const int32_t> prompt_ids, const structured::ReasoningTokens& reasoning);

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_STRUCTURED_OUTPUT_H_

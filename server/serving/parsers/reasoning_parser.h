#ifndef MOESERVE_SERVER_SERVING_PARSERS_REASONING_PARSER_H_
#define MOESERVE_SERVER_SERVING_PARSERS_REASONING_PARSER_H_

// Splits a reasoning model's output into reasoning (OpenAI's `reasoning_content`) and content:
// the text between <think> and </think> is reasoning, the rest content. Fed the generated text in
// deltas as the detokenizer completes it; each Feed() returns what is certain now, holding back a
// possible partial tag, so a tag split across deltas (or bytes) is still found.
//
// Where the output starts:
//   - DeepSeek-R1's generation prompt ends with "<think>\n": the output starts inside the block.
//     The parser looks at the rendered prompt: when its last non-space text is <think>, the output
//     starts in reasoning (a repeated <think> at the start of the output is dropped).
//   - Qwen3 (enable_thinking true, the default) lets the model open the block itself: when the
//     output begins, after optional whitespace, with <think>, what follows is reasoning; otherwise
//     it is all content (Qwen3 with enable_thinking=false puts "<think>\n\n</think>\n\n" in the
//     prompt, which closes the block, so the output is content).
//   - No </think> at all: everything after the opening is reasoning (a truncated or runaway
//     reasoning block), content stays empty.
// Whitespace next to the tags is layout, not text: reasoning does not start with the whitespace
// after <think> nor end with the whitespace before </think>, and content does not start with the
// whitespace after </think>. Text after </think> is content, even if it contains tags.
//
// The concatenation of all deltas does not depend on how the text was split: the whole-text
// result is Feed(all) + Finish().
//
// One parser per completion (per `index` when n > 1). Requires external synchronization.

#include <string>
#include <string_view>

namespace moeserve::parsers {

enum class ReasoningFormat {
  kNone,        // no split: everything is content
  kDeepSeekR1,  // DeepSeek-R1 and its distills: <think>…</think>, opened by the template
  kQwen3,       // Qwen3, QwQ: <think>…</think>, opened by the model unless the template closed it
};

struct ReasoningDelta {
  std::string reasoning;
  std::string content;
  bool empty() const { return reasoning.empty() && content.empty(); }
};

class ReasoningParser {
 public:
  // `prompt_text`: the prompt as rendered by the chat template (used only to see whether it ends
  // inside a reasoning block; not kept).
  ReasoningParser(ReasoningFormat format, std::string_view prompt_text);

  // Appends generated text; returns the reasoning and content that are certain now.
  // REQUIRES: Finish() not called yet.
  ReasoningDelta Feed(std::string_view text);

  // End of the output: returns what was held back.
  ReasoningDelta Finish();

  // True once the output is known to have a reasoning block (opened by the prompt or the model),
  // even an empty one: reasoning_content is then "" rather than absent.
  bool saw_reasoning() const { return saw_reasoning_; }

 private:
  enum class State {
    kStart,           // before any output: may open with <think> after whitespace
    kReasoningStart,  // inside the block, nothing emitted yet: drop whitespace and a repeated <think>
    kReasoning,       // inside the block
    kContentStart,    // right after </think>: drop whitespace
    kContent,         // the rest: all content
  };
  void Drain(ReasoningDelta* out);

  State state_;
  bool saw_reasoning_ = false;
  bool finished_ = false;
  std::string pending_;  // fed but not yet emitted
};

// True when the last non-space text of a rendered prompt is "<think>" (DeepSeek-R1's generation
// prompt): the output starts inside the reasoning block.
bool PromptOpensReasoning(std::string_view prompt_text);

}  // namespace moeserve::parsers

#endif  // MOESERVE_SERVER_SERVING_PARSERS_REASONING_PARSER_H_

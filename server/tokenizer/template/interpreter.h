#ifndef MOESERVE_SERVER_TOKENIZER_TEMPLATE_INTERPRETER_H_
#define MOESERVE_SERVER_TOKENIZER_TEMPLATE_INTERPRETER_H_

// Renders a parsed template with Jinja2's scoping: a for loop (and a macro call) opens a scope,
// `set` binds in the innermost scope, so assignments inside loops do not leak out (templates use
// namespace() for that); if/else opens none.

#include <string>

#include "absl/status/statusor.h"
#include "server/tokenizer/template/ast.h"
#include "server/tokenizer/template/budget.h"
#include "server/tokenizer/template/value.h"

namespace moeserve::jinja {

// `context` holds the template variables (messages, add_generation_prompt, bos_token, ...);
// the built-in globals are added beneath it. Errors carry the line/column of the failing
// expression or statement: InvalidArgument, or the budget's DeadlineExceeded / Cancelled.
absl::StatusOr<std::string> Render(const NodeList& root, const Dict& context, const RenderLimits& limits = {});

}  // namespace moeserve::jinja

#endif  // MOESERVE_SERVER_TOKENIZER_TEMPLATE_INTERPRETER_H_

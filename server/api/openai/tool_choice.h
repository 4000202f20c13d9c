#ifndef MOESERVE_SERVER_API_OPENAI_TOOL_CHOICE_H_
#define MOESERVE_SERVER_API_OPENAI_TOOL_CHOICE_H_

// OpenAI's `tool_choice` (chat completions with `tools`) and what the server enforces for it:
//   "none"                  the output is content; no tool-call parsing
//   "auto" (the default)    the model chooses; calls are parsed out of the output. When some tool
//                           is `strict` (and the model has a tool-call format), calls are
//                           constrained once the model opens one (AutoToolCallConstraint)
//   "required"              the output is tool calls only, constrained to the model's tool-call
//                           markup: one or more calls (exactly one when parallel_tool_calls is
//                           false) of any of the tools
//   {"type": "function", "function": {"name": N}}   exactly one call of N, constrained
// In the constrained choices each call's arguments are a compact JSON object that validates
// against the function's `parameters` schema (absent: no parameters, i.e. `{}`). A schema the
// structured-output compiler cannot take (an unsupported keyword) is a 400 naming
// tools[i].function.parameters when the function is `strict`, and otherwise relaxes that
// function's arguments to any JSON object. Forcing a call needs the model's tool-call format
// (`moeserve serve --tool-call-parser`, detected from the chat template) and cannot be combined
// with response_format. Pure functions; safe from any thread.

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/api/openai/openai_params.h"
#include "server/serving/parsers/tool_call_syntax.h"
#include "server/structured/constraint.h"

namespace moeserve::api::openai {

struct ToolChoice {
  enum class Mode { kNone, kAuto, kRequired, kFunction };
  Mode mode = Mode::kNone;
  std::string function;  // kFunction: the function's name

  bool forced() const { return mode == Mode::kRequired || mode == Mode::kFunction; }
};

// Reads body.tool_choice (tools: body.tools, already checked to be well-formed function tools;
// null when there are none). Errors name tool_choice.
absl::StatusOr<ToolChoice> ParseToolChoice(const Json& body, const Json& tools);

// tool_choice "auto" with at least one `strict` tool: the model writes free text, but once it opens
// a tool call in `format`'s markup (Hermes: <tool_call>; DeepSeek-V3: the calls block, and a bare
// call opening is refused in free text) the call must be a well-formed call of one of `tools`:
//   - a strict tool's arguments validate against its parameters (a schema the compiler cannot take
//     is a 400 naming tools[i].function.parameters);
//   - a non-strict tool's arguments are any JSON object (strict is the per-function opt-in, as in
//     OpenAI's API; the forced choices above constrain every tool's schema, since the output is
//     only calls anyway);
//   - a call naming no tool of the request cannot be written;
// then the closing markup, then free text again (Hermes: further calls, one at most when
// parallel_tool_calls is false; DeepSeek-V3: one block, of one call when parallel_tool_calls is
// false). EOS is allowed in free text, never inside a call. nullopt (unconstrained) when no tool is
// strict or the model has no tool-call format. A request that also has response_format keeps
// response_format's constraint (the caller does not ask for this one).
absl::StatusOr<std::optional<structured::Constraint>> AutoToolCallConstraint(const Json& tools,
                                                                             bool parallel_tool_calls,
                                                                             parsers::ToolCallFormat format);

// The constraint that makes the output the forced tool calls in `format`'s markup.
// REQUIRES: choice.forced(). FailedPrecondition-free: a model without a format gets InvalidArgument
// naming tool_choice.
absl::StatusOr<structured::Constraint> ForcedToolCallConstraint(const Json& tools, const ToolChoice& choice,
                                                                bool parallel_tool_calls,
                                                                parsers::ToolCallFormat format);

}  // namespace moeserve::api::openai

#endif  // MOESERVE_SERVER_API_OPENAI_TOOL_CHOICE_H_

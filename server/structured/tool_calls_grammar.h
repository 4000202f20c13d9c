#ifndef MOESERVE_SERVER_STRUCTURED_TOOL_CALLS_GRAMMAR_H_
#define MOESERVE_SERVER_STRUCTURED_TOOL_CALLS_GRAMMAR_H_

// ToolCallsGrammar: the grammar of an output that is only tool calls, written in a model's own
// markup, each call's arguments a compact JSON object that matches its function's JSON Schema
// (OpenAI's tool_choice "required" or a named function). The markup is the caller's (the API layer
// knows the model's tool-call format); this file knows only the layout:
//
//   output := begin call (separator call){0, max_calls - 1} end
//   call   := before_0 ARGS_0 after_0 | before_1 ARGS_1 after_1 | ...
//
// where ARGS_i is a JSON document of calls[i].arguments (a JSON Schema; null: any JSON object).
// The spec is JSON text, the value of a Constraint of kind kToolCalls:
//   {"begin": "", "end": "", "separator": "\n", "max_calls": 0,
//    "calls": [{"before": "<tool_call>\n{\"name\": \"f\", \"arguments\": ", "arguments": {...},
//               "after": "}\n</tool_call>"}]}
// begin, end and separator default to ""; max_calls 0 (or absent) is unbounded. At least one call.
//
// Errors (InvalidArgument) start with "tool_calls:" and name the part, e.g.
// "tool_calls: calls[1].arguments: unsupported keyword 'uniqueItems' at #". Pure function.

#include <string_view>

#include "absl/status/statusor.h"
#include "server/structured/grammar.h"
#include "server/structured/json_schema.h"

namespace moeserve::structured {

absl::StatusOr<Grammar> ToolCallsGrammar(std::string_view spec, const JsonSchemaOptions& options = {});

// Appends `from`'s rules to `into`, their names prefixed with `prefix` and their references
// renumbered; returns the index `from.root` has in `into`.
int32_t EmbedGrammar(Grammar from, std::string_view prefix, Grammar* into);

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_TOOL_CALLS_GRAMMAR_H_

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

// Tool calls the model may start at will (OpenAI's tool_choice "auto" with strict tools): free text
// until a trigger (the markup that opens a call), then tool calls, then free text again:
//
//   output := (FREE_UNTIL(trigger) CALLS){0, max_triggers} FREE
//
// FREE is any bytes in which neither the trigger nor a word of `avoid` occurs (FreeText in
// grammar.h); FREE_UNTIL(trigger) is such text followed by the trigger's first occurrence; CALLS is
// the tool-calls grammar above for the text that follows a trigger. The free-text part of the
// automaton is a KMP/Aho-Corasick automaton over the words, so its states need no stack and
// their token masks are precomputed whole. The spec, the value of a Constraint of kind kTriggered:
//   {"trigger": "<tool_call>", "avoid": [], "max_triggers": 0,
//    "tool_calls": {"max_calls": 1, "calls": [{"before": "\n{\"name\": \"f\", \"arguments\": ",
//                                               "arguments": {...}, "after": "}\n</tool_call>"}]}}
// max_triggers 0 (or absent) is unbounded; avoid defaults to none. Errors start with
// "triggered:" and name the part ("triggered: tool_calls: calls[0].arguments: ...").
absl::StatusOr<Grammar> TriggeredToolCallsGrammar(std::string_view spec, const JsonSchemaOptions& options = {});

// Appends `from`'s rules to `into`, their names prefixed with `prefix` and their references
// renumbered; returns the index `from.root` has in `into`.
int32_t EmbedGrammar(Grammar from, std::string_view prefix, Grammar* into);

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_TOOL_CALLS_GRAMMAR_H_

#ifndef MOESERVE_SERVER_STRUCTURED_CONSTRAINT_H_
#define MOESERVE_SERVER_STRUCTURED_CONSTRAINT_H_

// Constraint: what a request asks its output to match (structured output). A plain value type,
// part of SamplingParams; compiled by ConstraintCompiler (constraint_compiler.h).

#include <string>

namespace moeserve::structured {

struct Constraint {
  // kToolCalls: an output of tool calls in a model's markup (tool_calls_grammar.h), which the API
  // layer builds for a forced OpenAI tool_choice; kTriggered: free text in which tool calls may
  // start, each constrained once its opening markup appears (tool_choice "auto" with strict tools).
  enum class Kind { kNone, kJsonSchema, kRegex, kGrammar, kJsonObject, kToolCalls, kTriggered };
  Kind kind = Kind::kNone;
  std::string value;            // the schema, pattern, GBNF text or tool-calls spec (empty for kJsonObject)
  bool any_whitespace = false;  // JSON kinds: allow whitespace around structural characters

  bool active() const { return kind != Kind::kNone; }
  friend bool operator==(const Constraint&, const Constraint&) = default;
};

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_CONSTRAINT_H_

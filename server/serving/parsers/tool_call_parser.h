#ifndef MOESERVE_SERVER_SERVING_PARSERS_TOOL_CALL_PARSER_H_
#define MOESERVE_SERVER_SERVING_PARSERS_TOOL_CALL_PARSER_H_

// Finds tool calls in a model's (non-reasoning) output, fed in text deltas as the detokenizer
// completes them. Text outside the call markup is content and streams through at once, except a
// possible partial marker and trailing whitespace, held back until the next delta decides.
//
// Calls come out whole: a call is held until its closing markup arrives (or the output ends), its
// arguments are checked to be one JSON object, and only then is it reported, in one delta, with
// its index, id, name and complete arguments. In OpenAI's streaming terms that is a tool-call
// delta carrying index, id, type "function", function.name and all of function.arguments; a
// client that appends argument fragments gets the same result. Holding the call is what makes
// "arguments that are not valid JSON come back as content" true in streams as well: a malformed
// or truncated call (wrong JSON, no name, output cut off inside the call) is returned as content,
// exactly the text the model wrote, markup included, never as a half-sent call. A call missing
// only its closing tag at the very end of the output is accepted when its body is complete.
//
// Whitespace next to call markup is layout and is dropped (the newline before <tool_call>, the
// newlines between calls); prose after the calls is content again. Parallel calls are numbered
// 0, 1, ... in output order. Ids are "call_" + 24 letters and digits, derived from `id_seed` and
// the index: give each request a fresh random seed.
//
// The concatenation of all deltas does not depend on how the text was split: the whole-text
// result is Feed(all) + Finish(). When a request's calls were reported (num_calls() > 0), its
// finish_reason "stop" becomes "tool_calls".
//
// One parser per completion (per `index` when n > 1). Requires external synchronization.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/serving/parsers/tool_call_syntax.h"

namespace moeserve::parsers {

struct ToolCall {
  int index = 0;          // position among this completion's calls
  std::string id;         // "call_..."
  std::string name;       // the function's name
  std::string arguments;  // a JSON object, as the model wrote it
};

struct ToolCallDelta {
  std::string content;
  std::vector<ToolCall> calls;  // calls completed by this delta, in order
  bool empty() const { return content.empty() && calls.empty(); }
};

class ToolCallParser {
 public:
  // kNone passes all text through as content.
  ToolCallParser(ToolCallFormat format, uint64_t id_seed);

  // REQUIRES: Finish() not called yet.
  ToolCallDelta Feed(std::string_view text);
  // End of the output: releases held text, and a call left open (see above).
  ToolCallDelta Finish();

  int num_calls() const { return num_calls_; }

 private:
  enum class State {
    kContent,      // outside markup
    kBlock,        // inside a block of calls, between calls (DeepSeek)
    kAfterMarkup,  // right after a call or block: drop whitespace
    kCall,         // inside a call: buffer until it closes
  };
  void Drain(ToolCallDelta* out);
  // Ends the call whose body is `body`; `closed`: its closing marker was seen.
  void EndCall(std::string_view body, bool closed, ToolCallDelta* out);

  const ToolCallSyntax* syntax_;  // null for kNone
  uint64_t id_seed_;
  State state_ = State::kContent;
  bool in_block_ = false;
  bool finished_ = false;
  std::string pending_;      // fed but not yet emitted
  size_t call_scanned_ = 0;  // in kCall: pending_[0, call_scanned_) holds no marker start
  std::string layout_;       // whitespace dropped before the open call (restored if it fails)
  int num_calls_ = 0;
};

// The id of call `index` of a completion: "call_" + 24 characters of [A-Za-z0-9].
std::string ToolCallId(uint64_t id_seed, int index);

}  // namespace moeserve::parsers

#endif  // MOESERVE_SERVER_SERVING_PARSERS_TOOL_CALL_PARSER_H_

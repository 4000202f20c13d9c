#ifndef MOESERVE_SERVER_SERVING_PARSERS_JSON_TEXT_H_
#define MOESERVE_SERVER_SERVING_PARSERS_JSON_TEXT_H_

// Checks on JSON text written by a model, keeping the model's own spelling of values (a tool
// call's arguments go back to the client as the exact text the model wrote, not a re-serialized
// copy that could round numbers or reorder keys). Pure functions; never throw, whatever the input.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moeserve::parsers {

// True when `text` is exactly one JSON value (RFC 8259; valid UTF-8 in strings; surrounding
// whitespace allowed; no comments, no trailing commas).
bool IsJsonValue(std::string_view text);

// True when `text` is one JSON object (surrounding whitespace allowed).
bool IsJsonObject(std::string_view text);

struct JsonMember {
  std::string key;         // decoded
  std::string_view value;  // the value's raw text inside the object (no surrounding space)
};

// The top-level members of a JSON object text, in order; nullopt when `text` is not one JSON
// object. The views point into `text`.
std::optional<std::vector<JsonMember>> JsonObjectMembers(std::string_view text);

// The decoded value of a JSON string literal (`"..."` with escapes); nullopt for anything else.
std::optional<std::string> JsonStringValue(std::string_view literal);

}  // namespace moeserve::parsers

#endif  // MOESERVE_SERVER_SERVING_PARSERS_JSON_TEXT_H_

#ifndef MOESERVE_SERVER_TOKENIZER_TEMPLATE_PY_STRING_H_
#define MOESERVE_SERVER_TOKENIZER_TEMPLATE_PY_STRING_H_

// Python `str` semantics on UTF-8 strings for the chat-template interpreter: the string methods
// templates call (split, strip, replace, startswith, ...), code-point indexing helpers, and
// argument binding shared by methods and filters. Whitespace is Python's str.isspace().

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/tokenizer/template/value.h"

namespace moeserve::jinja {

// Binds positional and keyword arguments to `params` (Python call rules); missing ones stay
// Undefined. Errors name `fn`.
absl::StatusOr<std::vector<Value>> BindArgs(const std::string& fn, const CallArgs& args,
                                            std::initializer_list<std::string_view> params);

// Byte offsets where each code point starts, plus s.size() at the end.
std::vector<size_t> CharOffsets(const std::string& s);
std::vector<uint32_t> CodePoints(std::string_view s);
std::string FromCodePoints(const std::vector<uint32_t>& cps, size_t begin, size_t end);

// str.strip/lstrip/rstrip(chars); `chars` Undefined or None strips whitespace.
absl::StatusOr<std::string> Strip(const std::string& s, const Value& chars, bool left, bool right);
// str.split / str.rsplit(sep=None, maxsplit=-1); charges one unit per part.
absl::StatusOr<List> Split(const std::string& s, const Value& sep, const Value& maxsplit, bool from_right,
                           Budget& budget);
// str.replace(old, new, count=-1); charges the result's bytes, fails past max_output_bytes.
absl::StatusOr<std::string> Replace(const std::string& s, const Value& old_v, const Value& new_v, const Value& count,
                                    Budget& budget);
// str.upper() / str.lower() (full Unicode case mapping), str.capitalize(), str.title().
std::string CaseMap(const std::string& s, bool upper);
std::string Capitalize(const std::string& s);
std::string Title(const std::string& s);
// sep.join(str(item[attribute] if attribute else item) for item in iterable).
// Charges the items and the result's bytes, fails past max_output_bytes.
absl::StatusOr<std::string> Join(const Value& iterable, const std::string& sep, const Value& attribute, Budget& budget);

bool IsStringMethod(std::string_view name);
// s.name(*args), charged to `budget`; REQUIRES: IsStringMethod(name).
absl::StatusOr<Value> CallStringMethod(const std::string& s, const std::string& name, const CallArgs& args,
                                       Budget& budget);

}  // namespace moeserve::jinja

#endif  // MOESERVE_SERVER_TOKENIZER_TEMPLATE_PY_STRING_H_

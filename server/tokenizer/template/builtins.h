#ifndef MOESERVE_SERVER_TOKENIZER_TEMPLATE_BUILTINS_H_
#define MOESERVE_SERVER_TOKENIZER_TEMPLATE_BUILTINS_H_

// Filters, tests, attribute/item access and methods of the chat-template interpreter, with the
// semantics of Jinja2 + Python + transformers' overrides (tojson, raise_exception, strftime_now,
// namespace, dict). The Is*Supported predicates let the parser reject a template at load.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/tokenizer/template/value.h"

namespace moeserve::jinja {

bool IsSupportedFilter(std::string_view name);
bool IsSupportedTest(std::string_view name);
// Methods callable as obj.name(...) on strings, dicts or the loop object.
bool IsSupportedMethod(std::string_view name);
// Functions the template may call by name (range, namespace, raise_exception, ...).
bool IsSupportedGlobal(std::string_view name);

// The global functions, for the root scope of a render.
Dict MakeGlobals();

// Every function that takes a Budget charges its work to it (see budget.h) and fails with the
// budget's error once it is spent.

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& input, const CallArgs& args, Budget& budget);
absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& input, const CallArgs& args, Budget& budget);

// Jinja2 getattr(obj, name): a bound method, else obj[name], else Undefined. O(1). REQUIRES: obj
// is not Undefined (the caller reports that).
Value GetAttr(const Value& obj, const std::string& name);
// Jinja2 getitem: out-of-range indexes and missing keys give Undefined.
absl::StatusOr<Value> GetItem(const Value& obj, const Value& key, Budget& budget);
// Python obj[start:stop:step] on a list or string (unset bounds are None).
absl::StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop, const Value& step, Budget& budget);

// Python iteration: list items, dict keys, string characters; Undefined is empty.
absl::StatusOr<List> Iterate(const Value& v, Budget& budget);
// Python len(); Undefined has length 0.
absl::StatusOr<int64_t> Length(const Value& v, Budget& budget);

// Binary operators + - * / // % ** and comparisons == != < > <= >= in notin.
absl::StatusOr<Value> BinaryOp(const std::string& op, const Value& a, const Value& b, Budget& budget);
absl::StatusOr<bool> Compare(const std::string& op, const Value& a, const Value& b, Budget& budget);

// Python str(v) as a template prints it; InvalidArgument past limits().max_output_bytes.
absl::StatusOr<std::string> ToStr(const Value& v, Budget& budget);
// repr(v) cut to about `max_bytes`, for error messages.
std::string ShortRepr(const Value& v, size_t max_bytes = 80);

}  // namespace moeserve::jinja

#endif  // MOESERVE_SERVER_TOKENIZER_TEMPLATE_BUILTINS_H_

#ifndef MOESERVE_SERVER_TOKENIZER_TEMPLATE_VALUE_H_
#define MOESERVE_SERVER_TOKENIZER_TEMPLATE_VALUE_H_

// The dynamic value of the chat-template interpreter. It models the Python objects a Jinja2
// template sees when transformers renders it: None, bool, int, float, str, list, dict (insertion
// ordered), a namespace(), a callable, and Jinja's Undefined. Strings are UTF-8; lengths, indices
// and slices count code points as Python does.
// Values are immutable except namespaces (which `{% set ns.x = ... %}` mutates); copies share
// strings and containers, so copying any value is O(1). Not thread-safe: a value lives inside one
// render.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/tokenizer/template/budget.h"

namespace moeserve::jinja {

class Value;
using List = std::vector<Value>;

class Dict;
struct Callable;
struct CallArgs;
struct Namespace;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

  Value() = default;                                // Undefined.
  Value(bool b) : data_(b) {}                       // NOLINT(google-explicit-constructor)
  Value(int64_t i) : data_(i) {}                    // NOLINT
  Value(int i) : data_(static_cast<int64_t>(i)) {}  // NOLINT
  Value(double d) : data_(d) {}                     // NOLINT
  Value(std::string s) : data_(std::make_shared<const std::string>(std::move(s))) {}  // NOLINT
  Value(const char* s) : Value(std::string(s)) {}                                     // NOLINT
  Value(List l);  // NOLINT(google-explicit-constructor)
  Value(Dict d);  // NOLINT(google-explicit-constructor)

  static Value None() { return Value(Tag::kNone); }
  // `message` is the error raised when the value is used: "'foo' is undefined".
  static Value Undefined(std::string message);
  static Value MakeNamespace(Dict attrs);
  static Value MakeCallable(std::string name, std::function<absl::StatusOr<Value>(const CallArgs&, Budget&)> fn);
  // Objects become dicts in key order, arrays lists; JSON strings are trusted to be UTF-8.
  // InvalidArgument when arrays and objects nest deeper than `max_depth`.
  static absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& json, int max_depth);

  Kind kind() const;
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float(); }  // bool excluded
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_namespace() const { return kind() == Kind::kNamespace; }
  bool is_callable() const { return kind() == Kind::kCallable; }

  // REQUIRES: the matching kind (as_int also accepts bool, as_float any number or bool).
  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const;
  double as_float() const;
  const std::string& as_string() const { return *std::get<std::shared_ptr<const std::string>>(data_); }
  const List& as_list() const { return std::get<std::shared_ptr<const ListBox>>(data_)->items; }
  const Dict& as_dict() const;
  Namespace& as_namespace() const { return *std::get<std::shared_ptr<Namespace>>(data_); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<const Callable>>(data_); }
  const std::string& undefined_message() const;

  // Lists and dicts nested in one another: 0 for other values, 1 + the deepest item for a list or
  // dict. Namespaces count 0: traversals (str, ==, tojson) do not enter them.
  int depth() const;

  bool Truthy() const;  // Python bool()
  // Python str() (Undefined -> "") and repr(). Unbounded: for scalars and small values; use
  // AppendStr for anything a template built.
  std::string Str() const;
  std::string Repr() const;
  std::string TypeName() const;  // Python type name: 'str', 'dict', 'NoneType', ...

 private:
  enum class Tag { kNone };
  struct ListBox {
    List items;
    int depth = 1;
  };
  struct DictBox;
  struct UndefinedTag {
    std::shared_ptr<const std::string> name;
  };
  explicit Value(Tag) : data_(nullptr) {}

  std::variant<UndefinedTag, std::nullptr_t, bool, int64_t, double, std::shared_ptr<const std::string>,
               std::shared_ptr<const ListBox>, std::shared_ptr<const DictBox>, std::shared_ptr<Namespace>,
               std::shared_ptr<const Callable>>
      data_;
};

// A string-keyed map that keeps insertion order, like a Python dict built from JSON. Lookups are
// hashed once it holds more than a few keys.
class Dict {
 public:
  const Value* Find(std::string_view key) const;
  // Replaces the value of an existing key in place, else appends.
  void Set(std::string key, Value value);
  // Appends without looking for the key. REQUIRES: `key` is not in the dict.
  void Append(std::string key, Value value);
  void Reserve(size_t n) { entries_.reserve(n); }
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

 private:
  static constexpr size_t kIndexFrom = 16;     // smaller dicts are searched linearly
  size_t IndexOf(std::string_view key) const;  // entries_.size() when absent
  std::vector<std::pair<std::string, Value>> entries_;
  absl::flat_hash_map<std::string, size_t> index_;  // key -> entries_ position, when large
};

// Arguments of a call: positional, then keyword arguments in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;
};

// A function the template can call (built-ins, macros, bound methods); it charges its work to
// the render's budget.
struct Callable {
  std::string name;
  std::function<absl::StatusOr<Value>(const CallArgs&, Budget&)> fn;
};

struct Namespace {
  Dict attrs;
};

// Python ==: numbers compare by value across int/float/bool, containers element-wise, Undefined
// equals only Undefined. Charges one unit per item compared (and string bytes) to `budget`.
absl::StatusOr<bool> Equal(const Value& a, const Value& b, Budget& budget);

// Appends Python str(v) (repr(v) for AppendRepr) to `out`; false, with `out` cut, as soon as `out`
// would pass `max_bytes`. Every item visited adds at least one byte, so the work is O(max_bytes)
// however much the value shares.
bool AppendStr(const Value& v, size_t max_bytes, std::string* out);
bool AppendRepr(const Value& v, size_t max_bytes, std::string* out);

// Python repr() of a float ('1.0', '1e+16', '0.0001', '1e-05', 'inf').
std::string FormatFloat(double d);

struct JsonOptions {
  std::optional<int> indent;  // None: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool ensure_ascii = false;
  bool sort_keys = false;
  size_t max_bytes = SIZE_MAX;  // longer output is an error
};
// Python json.dumps(value, ...). Undefined, namespaces and callables are not serializable.
absl::StatusOr<std::string> ToJson(const Value& value, const JsonOptions& options);

}  // namespace moeserve::jinja

#endif  // MOESERVE_SERVER_TOKENIZER_TEMPLATE_VALUE_H_

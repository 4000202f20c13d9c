#include "server/tokenizer/template/builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/tokenizer/template/lexer.h"
#include "server/tokenizer/template/py_string.h"
#include "server/tokenizer/unicode.h"
#include "unicode/locid.h"
#include "unicode/uchar.h"
#include "unicode/unistr.h"

namespace moeserve::jinja {
namespace {

constexpr int64_t kMaxRange = 100000;                // Jinja2's sandbox limit
constexpr size_t kMaxStringBytes = size_t{1} << 26;  // 64 MiB per produced string

absl::Status TypeError(const std::string& message) { return absl::InvalidArgumentError(message); }

absl::Status UndefinedError(const Value& v) { return absl::InvalidArgumentError(v.undefined_message()); }


absl::StatusOr<Value> DictMethod(const Dict& d, const std::string& name, const CallArgs& args) {
  if (name == "items") {
    List out;
    for (const auto& [k, v] : d.entries()) out.emplace_back(List{Value(k), v});
    return Value(std::move(out));
  }
  if (name == "keys" || name == "values") {
    List out;
    for (const auto& [k, v] : d.entries()) out.push_back(name == "keys" ? Value(k) : v);
    return Value(std::move(out));
  }
  if (name == "get") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"key", "default"}));
    if (a[0].is_string()) {
      if (const Value* v = d.Find(a[0].as_string())) return *v;
    }
    return a[1].is_undefined() ? Value::None() : a[1];
  }
  return TypeError(absl::StrCat("'dict' object has no attribute '", name, "'"));
}

const absl::flat_hash_set<std::string_view>& DictMethods() {
  static const auto* kSet =
      new absl::flat_hash_set<std::string_view>{"items", "keys", "values", "get"};
  return *kSet;
}

int Compare3(double a, double b) { return a < b ? -1 : (a > b ? 1 : 0); }

// Python ordering for < > <= >=: numbers, strings (code point order == UTF-8 byte order), lists.
absl::StatusOr<int> Order(const Value& a, const Value& b, const std::string& op) {
  const bool a_num = a.is_number() || a.is_bool();
  const bool b_num = b.is_number() || b.is_bool();
  if (a_num && b_num) {
    if (a.is_float() || b.is_float()) return Compare3(a.as_float(), b.as_float());
    return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list()) {
    const List& x = a.as_list();
    const List& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equal(x[i], y[i])) continue;
      return Order(x[i], y[i], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  return TypeError(absl::StrCat("'", op, "' not supported between instances of '", a.TypeName(),
                                "' and '", b.TypeName(), "'"));
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) {
        return TypeError(absl::StrCat("'in <string>' requires string as left operand, not ",
                                      item.TypeName()));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.as_list()) {
        if (Equal(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      return item.is_string() && container.as_dict().Find(item.as_string()) != nullptr;
    case Value::Kind::kUndefined:
      return false;
    default:
      return TypeError(absl::StrCat("argument of type '", container.TypeName(), "' is not iterable"));
  }
}

absl::StatusOr<Value> ToJsonFilter(const Value& input, const CallArgs& args) {
  ASSIGN_OR_RETURN(auto a, BindArgs("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"}));
  JsonOptions o;
  o.ensure_ascii = a[0].Truthy();
  if (!a[1].is_undefined() && !a[1].is_none()) {
    if (!a[1].is_int() || a[1].as_int() < 0 || a[1].as_int() > 64) {
      return TypeError("tojson: indent must be a small non-negative integer");
    }
    o.indent = static_cast<int>(a[1].as_int());
    o.item_separator = ",";
  }
  if (!a[2].is_undefined() && !a[2].is_none()) {
    if (!a[2].is_list() || a[2].as_list().size() != 2 || !a[2].as_list()[0].is_string() ||
        !a[2].as_list()[1].is_string()) {
      return TypeError("tojson: separators must be a pair of strings");
    }
    o.item_separator = a[2].as_list()[0].as_string();
    o.key_separator = a[2].as_list()[1].as_string();
  }
  o.sort_keys = a[3].Truthy();
  ASSIGN_OR_RETURN(std::string json, ToJson(input, o));
  return Value(std::move(json));
}

absl::StatusOr<Value> ToInt(const Value& v, const Value& fallback) {
  const Value def = fallback.is_undefined() ? Value(int64_t{0}) : fallback;
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) {
    const double d = v.as_float();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return def;
    return Value(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    std::string s = v.as_string();
    ASSIGN_OR_RETURN(s, Strip(s, Value(), true, true));
    char* end = nullptr;
    errno = 0;
    const long long i = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end == s.c_str() + s.size() && errno == 0) return Value(static_cast<int64_t>(i));
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(d) && std::fabs(d) < 9.2e18) {
      return Value(static_cast<int64_t>(d));
    }
  }
  return def;
}

// Applies `test` (a test name and args) to every item of `input` for select/reject/*attr.
absl::StatusOr<Value> SelectFilter(const std::string& name, const Value& input, const CallArgs& args) {
  const bool by_attr = name == "selectattr" || name == "rejectattr";
  const bool keep_if = name == "select" || name == "selectattr";
  size_t next = 0;
  Value attr;
  if (by_attr) {
    if (args.positional.empty() || !args.positional[0].is_string()) {
      return TypeError(absl::StrCat(name, "() needs an attribute name"));
    }
    attr = args.positional[0];
    next = 1;
  }
  std::string test;
  CallArgs test_args;
  if (args.positional.size() > next) {
    if (!args.positional[next].is_string()) return TypeError(absl::StrCat(name, "(): test name must be a string"));
    test = args.positional[next].as_string();
    if (!IsSupportedTest(test)) return TypeError(absl::StrCat("unsupported test '", test, "'"));
    test_args.positional.assign(args.positional.begin() + static_cast<ptrdiff_t>(next) + 1,
                                args.positional.end());
  }
  ASSIGN_OR_RETURN(List items, Iterate(input));
  List out;
  for (const Value& item : items) {
    Value subject = item;
    if (by_attr) {
      if (item.is_undefined()) return UndefinedError(item);
      subject = GetAttr(item, attr.as_string());
    }
    bool pass;
    if (test.empty()) {
      pass = subject.Truthy();
    } else {
      ASSIGN_OR_RETURN(pass, ApplyTest(test, subject, test_args));
    }
    if (pass == keep_if) out.push_back(item);
  }
  return Value(std::move(out));
}

absl::StatusOr<Value> MapFilter(const Value& input, const CallArgs& args) {
  ASSIGN_OR_RETURN(List items, Iterate(input));
  List out;
  for (const auto& [key, value] : args.named) {
    if (key != "attribute" && key != "default") {
      return TypeError(absl::StrCat("map() got an unexpected keyword argument '", key, "'"));
    }
  }
  const Value* attribute = nullptr;
  const Value* def = nullptr;
  for (const auto& [key, value] : args.named) (key == "attribute" ? attribute : def) = &value;
  if (attribute != nullptr) {
    if (!attribute->is_string()) return TypeError("map(): attribute must be a string");
    for (const Value& item : items) {
      if (item.is_undefined()) return UndefinedError(item);
      Value v = GetAttr(item, attribute->as_string());
      if (v.is_undefined() && def != nullptr) v = *def;
      out.push_back(std::move(v));
    }
    return Value(std::move(out));
  }
  if (args.positional.empty() || !args.positional[0].is_string()) {
    return TypeError("map() needs a filter name or attribute=");
  }
  const std::string filter = args.positional[0].as_string();
  if (!IsSupportedFilter(filter) || filter == "map") {
    return TypeError(absl::StrCat("unsupported filter '", filter, "'"));
  }
  CallArgs filter_args;
  filter_args.positional.assign(args.positional.begin() + 1, args.positional.end());
  for (const Value& item : items) {
    ASSIGN_OR_RETURN(Value v, ApplyFilter(filter, item, filter_args));
    out.push_back(std::move(v));
  }
  return Value(std::move(out));
}

absl::StatusOr<Value> StrftimeNow(const CallArgs& args) {
  ASSIGN_OR_RETURN(auto a, BindArgs("strftime_now", args, {"format"}));
  if (!a[0].is_string()) return TypeError("strftime_now() format must be a string");
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[512];
  const size_t n = std::strftime(buf, sizeof(buf), a[0].as_string().c_str(), &tm);
  return Value(std::string(buf, n));
}

absl::StatusOr<Value> Range(const CallArgs& args) {
  if (!args.named.empty()) return TypeError("range() takes no keyword arguments");
  const auto& p = args.positional;
  if (p.empty() || p.size() > 3) return TypeError("range() takes 1 to 3 arguments");
  for (const Value& v : p) {
    if (!v.is_int() && !v.is_bool()) return TypeError("range() arguments must be integers");
  }
  int64_t start = 0, stop = 0, step = 1;
  if (p.size() == 1) {
    stop = p[0].as_int();
  } else {
    start = p[0].as_int();
    stop = p[1].as_int();
    if (p.size() == 3) step = p[2].as_int();
  }
  if (step == 0) return TypeError("range() arg 3 must not be zero");
  List out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (static_cast<int64_t>(out.size()) >= kMaxRange) {
      return TypeError(absl::StrCat("range too big, the sandbox allows at most ", kMaxRange, " items"));
    }
    out.emplace_back(i);
  }
  return Value(std::move(out));
}

absl::StatusOr<Dict> DictFromArgs(const std::string& fn, const CallArgs& args) {
  Dict d;
  if (args.positional.size() > 1) return TypeError(absl::StrCat(fn, "() takes at most 1 positional argument"));
  if (args.positional.size() == 1) {
    if (!args.positional[0].is_dict()) return TypeError(absl::StrCat(fn, "() argument must be a dict"));
    d = args.positional[0].as_dict();
  }
  for (const auto& [k, v] : args.named) d.Set(k, v);
  return d;
}

}  // namespace

bool IsSupportedFilter(std::string_view name) {
  static const auto* kSet = new absl::flat_hash_set<std::string_view>{
      "tojson", "trim", "length", "count", "lower", "upper", "capitalize", "title", "first",
      "last", "join", "default", "d", "replace", "reverse", "list", "string", "int", "float",
      "abs", "items", "map", "select", "reject", "selectattr", "rejectattr", "safe", "unique",
      "min", "max", "sum"};
  return kSet->contains(name);
}

bool IsSupportedTest(std::string_view name) {
  static const auto* kSet = new absl::flat_hash_set<std::string_view>{
      "defined", "undefined", "none", "boolean", "true", "false", "string", "number", "integer",
      "float", "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby", "eq",
      "equalto", "==", "ne", "!=", "lt", "<", "le", "<=", "gt", ">", "ge", ">=", "in", "sameas",
      "lower", "upper"};
  return kSet->contains(name);
}

bool IsSupportedMethod(std::string_view name) {
  return IsStringMethod(name) || DictMethods().contains(name) || name == "cycle";
}

bool IsSupportedGlobal(std::string_view name) {
  return name == "range" || name == "namespace" || name == "raise_exception" ||
         name == "strftime_now" || name == "dict";
}

Dict MakeGlobals() {
  Dict g;
  g.Set("range", Value::MakeCallable("range", Range));
  g.Set("namespace", Value::MakeCallable("namespace", [](const CallArgs& args) -> absl::StatusOr<Value> {
          ASSIGN_OR_RETURN(Dict d, DictFromArgs("namespace", args));
          for (const auto& [k, v] : d.entries()) {
            if (!k.empty() && k[0] == '_') {
              return TypeError(absl::StrCat("namespace attributes cannot start with '_': ", k));
            }
          }
          return Value::MakeNamespace(std::move(d));
        }));
  g.Set("dict", Value::MakeCallable("dict", [](const CallArgs& args) -> absl::StatusOr<Value> {
          ASSIGN_OR_RETURN(Dict d, DictFromArgs("dict", args));
          return Value(std::move(d));
        }));
  g.Set("raise_exception",
        Value::MakeCallable("raise_exception", [](const CallArgs& args) -> absl::StatusOr<Value> {
          std::string message = args.positional.empty() ? "" : args.positional[0].Str();
          return absl::InvalidArgumentError(absl::StrCat("raise_exception: ", message));
        }));
  g.Set("strftime_now", Value::MakeCallable("strftime_now", StrftimeNow));
  return g;
}

absl::StatusOr<List> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kList:
      return v.as_list();
    case Value::Kind::kDict: {
      List keys;
      for (const auto& [k, unused] : v.as_dict().entries()) keys.emplace_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      List chars;
      const std::string& s = v.as_string();
      for (size_t i = 0; i < s.size();) {
        const size_t n = Utf8CharLength(s[i]);
        chars.emplace_back(s.substr(i, n));
        i += n;
      }
      return chars;
    }
    case Value::Kind::kUndefined:
      return List{};
    default:
      return TypeError(absl::StrCat("'", v.TypeName(), "' object is not iterable"));
  }
}

absl::StatusOr<int64_t> Length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kString:
      return static_cast<int64_t>(CharOffsets(v.as_string()).size() - 1);
    case Value::Kind::kList:
      return static_cast<int64_t>(v.as_list().size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.as_dict().size());
    case Value::Kind::kUndefined:
      return 0;
    default:
      return TypeError(absl::StrCat("object of type '", v.TypeName(), "' has no len()"));
  }
}

Value GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_string() && IsStringMethod(name)) {
    const std::string s = obj.as_string();
    return Value::MakeCallable(name, [s, name](const CallArgs& args) { return CallStringMethod(s, name, args); });
  }
  if (obj.is_dict()) {
    if (DictMethods().contains(name)) {
      return Value::MakeCallable(name, [obj, name](const CallArgs& args) {
        return DictMethod(obj.as_dict(), name, args);
      });
    }
    if (const Value* v = obj.as_dict().Find(name)) return *v;
  }
  if (obj.is_namespace()) {
    if (const Value* v = obj.as_namespace().attrs.Find(name)) return *v;
  }
  return Value::Undefined(absl::StrCat("'", obj.TypeName(), " object' has no attribute '", name, "'"));
}

Value GetItem(const Value& obj, const Value& key) {
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.as_list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.as_list()[static_cast<size_t>(i)];
    } else {
      const std::vector<size_t> offsets = CharOffsets(obj.as_string());
      const int64_t n = static_cast<int64_t>(offsets.size()) - 1;
      if (i < 0) i += n;
      if (i >= 0 && i < n) {
        return Value(obj.as_string().substr(offsets[i], offsets[i + 1] - offsets[i]));
      }
    }
    return Value::Undefined(absl::StrCat("'", obj.TypeName(), " object' has no element ", key.Str()));
  }
  if (obj.is_dict() && key.is_string()) {
    if (const Value* v = obj.as_dict().Find(key.as_string())) return *v;
    return Value::Undefined(absl::StrCat("'dict object' has no attribute '", key.as_string(), "'"));
  }
  if (key.is_string()) return GetAttr(obj, key.as_string());
  return Value::Undefined(absl::StrCat("'", obj.TypeName(), " object' has no element ", key.Repr()));
}

absl::StatusOr<Value> Slice(const Value& obj, const Value& start_v, const Value& stop_v,
                            const Value& step_v) {
  auto bound = [](const Value& v, const char* what) -> absl::StatusOr<std::optional<int64_t>> {
    if (v.is_undefined() || v.is_none()) return std::optional<int64_t>();
    if (!v.is_int() && !v.is_bool()) {
      return TypeError(absl::StrCat("slice ", what, " must be an integer or None"));
    }
    return std::optional<int64_t>(v.as_int());
  };
  ASSIGN_OR_RETURN(auto start_o, bound(start_v, "start"));
  ASSIGN_OR_RETURN(auto stop_o, bound(stop_v, "stop"));
  ASSIGN_OR_RETURN(auto step_o, bound(step_v, "step"));
  const int64_t step = step_o.value_or(1);
  if (step == 0) return TypeError("slice step cannot be zero");
  if (step == INT64_MIN) return TypeError("slice step out of range");
  std::vector<size_t> offsets;
  int64_t n;
  if (obj.is_list()) {
    n = static_cast<int64_t>(obj.as_list().size());
  } else if (obj.is_string()) {
    offsets = CharOffsets(obj.as_string());
    n = static_cast<int64_t>(offsets.size()) - 1;
  } else if (obj.is_undefined()) {
    return UndefinedError(obj);
  } else {
    return TypeError(absl::StrCat("'", obj.TypeName(), "' object is not subscriptable"));
  }
  // CPython's PySlice_AdjustIndices.
  auto adjust = [&](std::optional<int64_t> v, int64_t def) {
    if (!v.has_value()) return def;
    int64_t i = *v;
    if (i < 0) {
      i = i < -n ? (step < 0 ? -1 : 0) : i + n;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return i;
  };
  const int64_t start = adjust(start_o, step < 0 ? n - 1 : 0);
  const int64_t stop = adjust(stop_o, step < 0 ? -1 : n);
  List items;
  std::string s;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (obj.is_list()) {
      items.push_back(obj.as_list()[static_cast<size_t>(i)]);
    } else {
      s.append(obj.as_string(), offsets[i], offsets[i + 1] - offsets[i]);
    }
    if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
  }
  if (obj.is_list()) return Value(std::move(items));
  return Value(std::move(s));
}

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& input, const CallArgs& args) {
  if (name == "tojson") return ToJsonFilter(input, args);
  if (name == "default" || name == "d") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"default_value", "boolean"}));
    const bool use_default = input.is_undefined() || (a[1].Truthy() && !input.Truthy());
    if (!use_default) return input;
    return a[0].is_undefined() ? Value("") : a[0];
  }
  if (name == "safe") return input;
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    return SelectFilter(name, input, args);
  }
  if (name == "map") return MapFilter(input, args);
  if (input.is_undefined() && name != "length" && name != "count" && name != "list" &&
      name != "string" && name != "trim" && name != "lower" && name != "upper" && name != "join") {
    return UndefinedError(input);
  }
  if (name == "length" || name == "count") {
    ASSIGN_OR_RETURN(int64_t n, Length(input));
    return Value(n);
  }
  if (name == "string") return Value(input.Str());
  if (name == "trim") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"chars"}));
    ASSIGN_OR_RETURN(std::string r, Strip(input.Str(), a[0], true, true));
    return Value(std::move(r));
  }
  if (name == "lower" || name == "upper") return Value(CaseMap(input.Str(), name == "upper"));
  if (name == "capitalize") return Value(Capitalize(input.Str()));
  if (name == "title") return Value(Title(input.Str()));
  if (name == "replace") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"old", "new", "count"}));
    ASSIGN_OR_RETURN(std::string r, Replace(input.Str(), a[0], a[1], a[2]));
    return Value(std::move(r));
  }
  if (name == "join") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"d", "attribute"}));
    const std::string sep = a[0].is_undefined() ? "" : a[0].Str();
    ASSIGN_OR_RETURN(std::string r, Join(input, sep, a[1]));
    return Value(std::move(r));
  }
  if (name == "list") {
    ASSIGN_OR_RETURN(List items, Iterate(input));
    return Value(std::move(items));
  }
  if (name == "first" || name == "last") {
    ASSIGN_OR_RETURN(List items, Iterate(input));
    if (items.empty()) return Value::Undefined(absl::StrCat("No ", name, " item, sequence was empty."));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (input.is_string()) {
      std::vector<uint32_t> cps = CodePoints(input.as_string());
      std::reverse(cps.begin(), cps.end());
      return Value(FromCodePoints(cps, 0, cps.size()));
    }
    ASSIGN_OR_RETURN(List items, Iterate(input));
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "int") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"default", "base"}));
    return ToInt(input, a[0]);
  }
  if (name == "float") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"default"}));
    if (input.is_number() || input.is_bool()) return Value(input.as_float());
    if (input.is_string()) {
      char* end = nullptr;
      const std::string& s = input.as_string();
      const double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end == s.c_str() + s.size()) return Value(d);
    }
    return a[0].is_undefined() ? Value(0.0) : a[0];
  }
  if (name == "abs") {
    if (input.is_float()) return Value(std::fabs(input.as_float()));
    if (input.is_int() || input.is_bool()) {
      if (input.as_int() == INT64_MIN) return TypeError("abs(): integer overflow");
      return Value(input.as_int() < 0 ? -input.as_int() : input.as_int());
    }
    return TypeError(absl::StrCat("bad operand type for abs(): '", input.TypeName(), "'"));
  }
  if (name == "items") {
    if (!input.is_dict()) return TypeError("items(): input must be a dict");
    return DictMethod(input.as_dict(), "items", CallArgs{});
  }
  if (name == "unique") {
    ASSIGN_OR_RETURN(List items, Iterate(input));
    List out;
    for (const Value& v : items) {
      bool seen = false;
      for (const Value& w : out) seen = seen || Equal(v, w);
      if (!seen) out.push_back(v);
    }
    return Value(std::move(out));
  }
  if (name == "min" || name == "max") {
    ASSIGN_OR_RETURN(List items, Iterate(input));
    if (items.empty()) return Value::Undefined(absl::StrCat("No ", name, " item, sequence was empty."));
    Value best = items[0];
    for (size_t i = 1; i < items.size(); ++i) {
      ASSIGN_OR_RETURN(int c, Order(items[i], best, "<"));
      if ((name == "min" && c < 0) || (name == "max" && c > 0)) best = items[i];
    }
    return best;
  }
  if (name == "sum") {
    ASSIGN_OR_RETURN(List items, Iterate(input));
    Value total(int64_t{0});
    for (const Value& v : items) {
      ASSIGN_OR_RETURN(total, BinaryOp("+", total, v));
    }
    return total;
  }
  return TypeError(absl::StrCat("unsupported filter '", name, "'"));
}

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, const CallArgs& args) {
  const Value arg = args.positional.empty() ? Value() : args.positional[0];
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number() || v.is_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "callable") return v.is_callable();
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    return CaseMap(v.as_string(), name == "upper") == v.as_string() &&
           CaseMap(v.as_string(), name != "upper") != v.as_string();
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool()) {
      return TypeError(absl::StrCat("test '", name, "' needs an integer, got ", v.TypeName()));
    }
    if (name == "divisibleby") {
      if (!arg.is_int() || arg.as_int() == 0) return TypeError("divisibleby needs a non-zero integer");
      if (arg.as_int() == -1) return true;
      return v.as_int() % arg.as_int() == 0;
    }
    const bool odd = (v.as_int() % 2) != 0;
    return name == "odd" ? odd : !odd;
  }
  if (name == "eq" || name == "equalto" || name == "==") return Equal(v, arg);
  if (name == "ne" || name == "!=") return !Equal(v, arg);
  if (name == "sameas") {
    if (v.kind() != arg.kind()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.is_bool()) return v.as_bool() == arg.as_bool();
    return false;
  }
  if (name == "in") return Contains(arg, v);
  for (std::string_view op : {"lt", "<", "le", "<=", "gt", ">", "ge", ">="}) {
    if (name != op) continue;
    std::string sym(op);
    if (op == "lt") sym = "<";
    if (op == "le") sym = "<=";
    if (op == "gt") sym = ">";
    if (op == "ge") sym = ">=";
    return Compare(sym, v, arg);
  }
  return TypeError(absl::StrCat("unsupported test '", name, "'"));
}

absl::StatusOr<bool> Compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Equal(a, b);
  if (op == "!=") return !Equal(a, b);
  if (op == "in") return Contains(b, a);
  if (op == "notin") {
    ASSIGN_OR_RETURN(bool in, Contains(b, a));
    return !in;
  }
  ASSIGN_OR_RETURN(int c, Order(a, b, op));
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  if (op == ">=") return c >= 0;
  return TypeError(absl::StrCat("unknown comparison '", op, "'"));
}

absl::StatusOr<Value> BinaryOp(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  const bool a_num = a.is_number() || a.is_bool();
  const bool b_num = b.is_number() || b.is_bool();
  const bool as_float = a.is_float() || b.is_float();
  if (a_num && b_num) {
    if (op == "/") {
      if (b.as_float() == 0) return TypeError("division by zero");
      return Value(a.as_float() / b.as_float());
    }
    if (as_float) {
      const double x = a.as_float(), y = b.as_float();
      if (op == "+") return Value(x + y);
      if (op == "-") return Value(x - y);
      if (op == "*") return Value(x * y);
      if (op == "**") return Value(std::pow(x, y));
      if (y == 0) return TypeError("float division by zero");
      if (op == "//") return Value(std::floor(x / y));
      if (op == "%") {
        double m = std::fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value(m);
      }
    } else {
      const int64_t x = a.as_int(), y = b.as_int();
      int64_t r = 0;
      if (op == "+" && !__builtin_add_overflow(x, y, &r)) return Value(r);
      if (op == "-" && !__builtin_sub_overflow(x, y, &r)) return Value(r);
      if (op == "*" && !__builtin_mul_overflow(x, y, &r)) return Value(r);
      if (op == "**") {
        if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
        r = 1;
        for (int64_t i = 0; i < y; ++i) {
          if (__builtin_mul_overflow(r, x, &r)) return TypeError("integer overflow");
          if (r == 0 || r == 1) break;
        }
        return Value(r);
      }
      if (op == "//" || op == "%") {
        if (y == 0) return TypeError("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) return TypeError("integer overflow");
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        return Value(op == "//" ? q : m);
      }
      return TypeError("integer overflow");
    }
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.as_string().size() + b.as_string().size() > kMaxStringBytes) return TypeError("string too large");
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      List out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return Value(std::move(out));
    }
    if (a.is_string()) {
      return TypeError(absl::StrCat("can only concatenate str (not \"", b.TypeName(), "\") to str"));
    }
  }
  if (op == "*" && (a.is_string() || a.is_list() || b.is_string() || b.is_list())) {
    const Value& seq = (a.is_string() || a.is_list()) ? a : b;
    const Value& count = (a.is_string() || a.is_list()) ? b : a;
    if (count.is_int() || count.is_bool()) {
      const int64_t n = std::max<int64_t>(0, count.as_int());
      const size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size();
      if (unit != 0 && static_cast<uint64_t>(n) > kMaxStringBytes / unit) return TypeError("repeated sequence too large");
      if (seq.is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq.as_string();
        return Value(std::move(out));
      }
      List out;
      for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
      return Value(std::move(out));
    }
  }
  if (op == "%" && a.is_string()) return TypeError("unsupported: printf-style string formatting with '%'");
  return TypeError(absl::StrCat("unsupported operand type(s) for ", op, ": '", a.TypeName(), "' and '",
                                b.TypeName(), "'"));
}

}  // namespace moeserve::jinja

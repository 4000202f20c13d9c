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

constexpr int64_t kMaxRange = 100000;  // Jinja2's sandbox limit

absl::Status TypeError(const std::string& message) { return absl::InvalidArgumentError(message); }

absl::Status UndefinedError(const Value& v) { return absl::InvalidArgumentError(v.undefined_message()); }

// The largest string an expression may build.
size_t MaxString(const Budget& budget) { return budget.limits().max_output_bytes; }

absl::StatusOr<Value> DictMethod(const Dict& d, const std::string& name, const CallArgs& args, Budget& budget) {
  if (name == "items") {
    RETURN_IF_ERROR(budget.Charge(3 * static_cast<int64_t>(d.size())));
    List out;
    for (const auto& [k, v] : d.entries()) out.emplace_back(List{Value(k), v});
    return Value(std::move(out));
  }
  if (name == "keys" || name == "values") {
    RETURN_IF_ERROR(budget.Charge(static_cast<int64_t>(d.size())));
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
  static const auto* kSet = new absl::flat_hash_set<std::string_view>{"items", "keys", "values", "get"};
  return *kSet;
}

int Compare3(double a, double b) { return a < b ? -1 : (a > b ? 1 : 0); }

// Python ordering for < > <= >=: numbers, strings (code point order == UTF-8 byte order), lists.
absl::StatusOr<int> Order(const Value& a, const Value& b, const std::string& op, Budget& budget) {
  RETURN_IF_ERROR(budget.Charge());
  const bool a_num = a.is_number() || a.is_bool();
  const bool b_num = b.is_number() || b.is_bool();
  if (a_num && b_num) {
    if (a.is_float() || b.is_float()) return Compare3(a.as_float(), b.as_float());
    return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    RETURN_IF_ERROR(budget.ChargeBytes(std::min(a.as_string().size(), b.as_string().size())));
    const int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list()) {
    const List& x = a.as_list();
    const List& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      ASSIGN_OR_RETURN(bool same, Equal(x[i], y[i], budget));
      if (same) continue;
      return Order(x[i], y[i], op, budget);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  return TypeError(
      absl::StrCat("'", op, "' not supported between instances of '", a.TypeName(), "' and '", b.TypeName(), "'"));
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item, Budget& budget) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) {
        return TypeError(absl::StrCat("'in <string>' requires string as left operand, not ", item.TypeName()));
      }
      RETURN_IF_ERROR(budget.ChargeBytes(container.as_string().size()));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.as_list()) {
        ASSIGN_OR_RETURN(bool same, Equal(v, item, budget));
        if (same) return true;
      }
      return false;
    case Value::Kind::kDict: return item.is_string() && container.as_dict().Find(item.as_string()) != nullptr;
    case Value::Kind::kUndefined: return false;
    default: return TypeError(absl::StrCat("argument of type '", container.TypeName(), "' is not iterable"));
  }
}

absl::StatusOr<Value> ToJsonFilter(const Value& input, const CallArgs& args, Budget& budget) {
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
  o.max_bytes = MaxString(budget);
  ASSIGN_OR_RETURN(std::string json, ToJson(input, o));
  RETURN_IF_ERROR(budget.ChargeBytes(json.size()));
  return Value(std::move(json));
}

absl::StatusOr<Value> ToInt(const Value& v, const Value& fallback, Budget& budget) {
  const Value def = fallback.is_undefined() ? Value(int64_t{0}) : fallback;
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) {
    const double d = v.as_float();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return def;
    return Value(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    RETURN_IF_ERROR(budget.ChargeBytes(v.as_string().size()));
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
absl::StatusOr<Value> SelectFilter(const std::string& name, const Value& input, const CallArgs& args, Budget& budget) {
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
    test_args.positional.assign(args.positional.begin() + static_cast<ptrdiff_t>(next) + 1, args.positional.end());
  }
  ASSIGN_OR_RETURN(List items, Iterate(input, budget));
  List out;
  for (const Value& item : items) {
    RETURN_IF_ERROR(budget.Charge());
    Value subject = item;
    if (by_attr) {
      if (item.is_undefined()) return UndefinedError(item);
      subject = GetAttr(item, attr.as_string());
    }
    bool pass;
    if (test.empty()) {
      pass = subject.Truthy();
    } else {
      ASSIGN_OR_RETURN(pass, ApplyTest(test, subject, test_args, budget));
    }
    if (pass == keep_if) out.push_back(item);
  }
  return Value(std::move(out));
}

absl::StatusOr<Value> MapFilter(const Value& input, const CallArgs& args, Budget& budget) {
  ASSIGN_OR_RETURN(List items, Iterate(input, budget));
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
      RETURN_IF_ERROR(budget.Charge());
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
    RETURN_IF_ERROR(budget.Charge());
    ASSIGN_OR_RETURN(Value v, ApplyFilter(filter, item, filter_args, budget));
    out.push_back(std::move(v));
  }
  return Value(std::move(out));
}

absl::StatusOr<Value> StrftimeNow(const CallArgs& args, Budget&) {
  ASSIGN_OR_RETURN(auto a, BindArgs("strftime_now", args, {"format"}));
  if (!a[0].is_string()) return TypeError("strftime_now() format must be a string");
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[512];
  const size_t n = std::strftime(buf, sizeof(buf), a[0].as_string().c_str(), &tm);
  return Value(std::string(buf, n));
}

absl::StatusOr<Value> Range(const CallArgs& args, Budget& budget) {
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
    RETURN_IF_ERROR(budget.Charge());
    out.emplace_back(i);
  }
  return Value(std::move(out));
}

absl::StatusOr<Dict> DictFromArgs(const std::string& fn, const CallArgs& args, Budget& budget) {
  Dict d;
  if (args.positional.size() > 1) return TypeError(absl::StrCat(fn, "() takes at most 1 positional argument"));
  if (args.positional.size() == 1) {
    if (!args.positional[0].is_dict()) return TypeError(absl::StrCat(fn, "() argument must be a dict"));
    d = args.positional[0].as_dict();
    RETURN_IF_ERROR(budget.Charge(static_cast<int64_t>(d.size())));
  }
  for (const auto& [k, v] : args.named) d.Set(k, v);
  return d;
}

}  // namespace

bool IsSupportedFilter(std::string_view name) {
  static const auto* kSet = new absl::flat_hash_set<std::string_view>{
      "tojson",     "trim",       "length", "count",   "lower", "upper",   "capitalize", "title",
      "first",      "last",       "join",   "default", "d",     "replace", "reverse",    "list",
      "string",     "int",        "float",  "abs",     "items", "map",     "select",     "reject",
      "selectattr", "rejectattr", "safe",   "unique",  "min",   "max",     "sum"};
  return kSet->contains(name);
}

bool IsSupportedTest(std::string_view name) {
  static const auto* kSet = new absl::flat_hash_set<std::string_view>{
      "defined", "undefined", "none",     "boolean",  "true",     "false", "string", "number",      "integer",
      "float",   "mapping",   "iterable", "sequence", "callable", "odd",   "even",   "divisibleby", "eq",
      "equalto", "==",        "ne",       "!=",       "lt",       "<",     "le",     "<=",          "gt",
      ">",       "ge",        ">=",       "in",       "sameas",   "lower", "upper"};
  return kSet->contains(name);
}

bool IsSupportedMethod(std::string_view name) {
  return IsStringMethod(name) || DictMethods().contains(name) || name == "cycle";
}

bool IsSupportedGlobal(std::string_view name) {
  return name == "range" || name == "namespace" || name == "raise_exception" || name == "strftime_now" ||
         name == "dict";
}

Dict MakeGlobals() {
  Dict g;
  g.Set("range", Value::MakeCallable("range", Range));
  g.Set("namespace",
        Value::MakeCallable("namespace", [](const CallArgs& args, Budget& budget) -> absl::StatusOr<Value> {
          ASSIGN_OR_RETURN(Dict d, DictFromArgs("namespace", args, budget));
          for (const auto& [k, v] : d.entries()) {
            if (!k.empty() && k[0] == '_') {
              return TypeError(absl::StrCat("namespace attributes cannot start with '_': ", k));
            }
          }
          return Value::MakeNamespace(std::move(d));
        }));
  g.Set("dict", Value::MakeCallable("dict", [](const CallArgs& args, Budget& budget) -> absl::StatusOr<Value> {
          ASSIGN_OR_RETURN(Dict d, DictFromArgs("dict", args, budget));
          return Value(std::move(d));
        }));
  g.Set("raise_exception",
        Value::MakeCallable("raise_exception", [](const CallArgs& args, Budget&) -> absl::StatusOr<Value> {
          std::string message;
          if (!args.positional.empty() && !AppendStr(args.positional[0], 4096, &message)) message += "...";
          return absl::InvalidArgumentError(absl::StrCat("raise_exception: ", message));
        }));
  g.Set("strftime_now", Value::MakeCallable("strftime_now", StrftimeNow));
  return g;
}

absl::StatusOr<List> Iterate(const Value& v, Budget& budget) {
  switch (v.kind()) {
    case Value::Kind::kList:
      RETURN_IF_ERROR(budget.Charge(static_cast<int64_t>(v.as_list().size())));
      return v.as_list();
    case Value::Kind::kDict: {
      RETURN_IF_ERROR(budget.Charge(static_cast<int64_t>(v.as_dict().size())));
      List keys;
      for (const auto& [k, unused] : v.as_dict().entries()) keys.emplace_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      const std::string& s = v.as_string();
      List chars;
      for (size_t i = 0; i < s.size();) {
        RETURN_IF_ERROR(budget.Charge(4));  // a string and a list slot per character
        const size_t n = Utf8CharLength(s[i]);
        chars.emplace_back(s.substr(i, n));
        i += n;
      }
      return chars;
    }
    case Value::Kind::kUndefined: return List{};
    default: return TypeError(absl::StrCat("'", v.TypeName(), "' object is not iterable"));
  }
}

absl::StatusOr<int64_t> Length(const Value& v, Budget& budget) {
  switch (v.kind()) {
    case Value::Kind::kString:
      RETURN_IF_ERROR(budget.ChargeBytes(v.as_string().size()));
      return static_cast<int64_t>(CharOffsets(v.as_string()).size() - 1);
    case Value::Kind::kList: return static_cast<int64_t>(v.as_list().size());
    case Value::Kind::kDict: return static_cast<int64_t>(v.as_dict().size());
    case Value::Kind::kUndefined: return 0;
    default: return TypeError(absl::StrCat("object of type '", v.TypeName(), "' has no len()"));
  }
}

Value GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_string() && IsStringMethod(name)) {
    return Value::MakeCallable(name, [obj, name](const CallArgs& args, Budget& budget) {
      return CallStringMethod(obj.as_string(), name, args, budget);
    });
  }
  if (obj.is_dict()) {
    if (DictMethods().contains(name)) {
      return Value::MakeCallable(name, [obj, name](const CallArgs& args, Budget& budget) {
        return DictMethod(obj.as_dict(), name, args, budget);
      });
    }
    if (const Value* v = obj.as_dict().Find(name)) return *v;
  }
  if (obj.is_namespace()) {
    if (const Value* v = obj.as_namespace().attrs.Find(name)) return *v;
  }
  return Value::Undefined(absl::StrCat("'", obj.TypeName(), " object' has no attribute '", name, "'"));
}

absl::StatusOr<Value> GetItem(const Value& obj, const Value& key, Budget& budget) {
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.as_list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.as_list()[static_cast<size_t>(i)];
    } else {
      RETURN_IF_ERROR(budget.ChargeBytes(obj.as_string().size()));
      const std::vector<size_t> offsets = CharOffsets(obj.as_string());
      const int64_t n = static_cast<int64_t>(offsets.size()) - 1;
      if (i < 0) i += n;
      if (i >= 0 && i < n) {
        return Value(obj.as_string().substr(offsets[i], offsets[i + 1] - offsets[i]));
      }
    }
    return Value::Undefined(absl::StrCat("'", obj.TypeName(), " object' has no element ", key.Str()));
  }
  if (key.is_string()) RETURN_IF_ERROR(budget.ChargeBytes(key.as_string().size()));
  if (obj.is_dict() && key.is_string()) {
    if (const Value* v = obj.as_dict().Find(key.as_string())) return *v;
    return Value::Undefined(absl::StrCat("'dict object' has no attribute ", ShortRepr(key)));
  }
  if (key.is_string()) return GetAttr(obj, key.as_string());
  return Value::Undefined(absl::StrCat("'", obj.TypeName(), " object' has no element ", ShortRepr(key)));
}

absl::StatusOr<Value> Slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v,
                            Budget& budget) {
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
    RETURN_IF_ERROR(budget.ChargeBytes(obj.as_string().size()));
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
    RETURN_IF_ERROR(budget.Charge());
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

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& input, const CallArgs& args, Budget& budget) {
  if (name == "tojson") return ToJsonFilter(input, args, budget);
  if (name == "default" || name == "d") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"default_value", "boolean"}));
    const bool use_default = input.is_undefined() || (a[1].Truthy() && !input.Truthy());
    if (!use_default) return input;
    return a[0].is_undefined() ? Value("") : a[0];
  }
  if (name == "safe") return input;
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    return SelectFilter(name, input, args, budget);
  }
  if (name == "map") return MapFilter(input, args, budget);
  if (input.is_undefined() && name != "length" && name != "count" && name != "list" && name != "string" &&
      name != "trim" && name != "lower" && name != "upper" && name != "join") {
    return UndefinedError(input);
  }
  if (name == "length" || name == "count") {
    ASSIGN_OR_RETURN(int64_t n, Length(input, budget));
    return Value(n);
  }
  if (name == "join") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"d", "attribute"}));
    std::string sep;
    if (!a[0].is_undefined()) {
      ASSIGN_OR_RETURN(sep, ToStr(a[0], budget));
    }
    ASSIGN_OR_RETURN(std::string r, Join(input, sep, a[1], budget));
    return Value(std::move(r));
  }
  if (name == "string" || name == "trim" || name == "lower" || name == "upper" || name == "capitalize" ||
      name == "title" || name == "replace") {
    ASSIGN_OR_RETURN(std::string text, ToStr(input, budget));
    if (name == "string") return Value(std::move(text));
    if (name == "replace") return CallStringMethod(text, name, args, budget);
    if (name == "trim") {
      ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"chars"}));
      ASSIGN_OR_RETURN(std::string r, Strip(text, a[0], true, true));
      return Value(std::move(r));
    }
    return CallStringMethod(text, name, CallArgs{}, budget);
  }
  if (name == "list") {
    ASSIGN_OR_RETURN(List items, Iterate(input, budget));
    return Value(std::move(items));
  }
  if (name == "first" || name == "last") {
    if (input.is_list()) {
      const List& items = input.as_list();
      if (!items.empty()) return name == "first" ? items.front() : items.back();
    }
    ASSIGN_OR_RETURN(List items, Iterate(input, budget));
    if (items.empty()) return Value::Undefined(absl::StrCat("No ", name, " item, sequence was empty."));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (input.is_string()) {
      RETURN_IF_ERROR(budget.ChargeBytes(input.as_string().size()));
      std::vector<uint32_t> cps = CodePoints(input.as_string());
      std::reverse(cps.begin(), cps.end());
      return Value(FromCodePoints(cps, 0, cps.size()));
    }
    ASSIGN_OR_RETURN(List items, Iterate(input, budget));
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "int") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"default", "base"}));
    return ToInt(input, a[0], budget);
  }
  if (name == "float") {
    ASSIGN_OR_RETURN(auto a, BindArgs(name, args, {"default"}));
    if (input.is_number() || input.is_bool()) return Value(input.as_float());
    if (input.is_string()) {
      RETURN_IF_ERROR(budget.ChargeBytes(input.as_string().size()));
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
    return DictMethod(input.as_dict(), "items", CallArgs{}, budget);
  }
  if (name == "unique") {
    ASSIGN_OR_RETURN(List items, Iterate(input, budget));
    List out;
    for (const Value& v : items) {
      bool seen = false;
      for (size_t i = 0; i < out.size() && !seen; ++i) {
        ASSIGN_OR_RETURN(seen, Equal(v, out[i], budget));
      }
      if (!seen) out.push_back(v);
    }
    return Value(std::move(out));
  }
  if (name == "min" || name == "max") {
    ASSIGN_OR_RETURN(List items, Iterate(input, budget));
    if (items.empty()) return Value::Undefined(absl::StrCat("No ", name, " item, sequence was empty."));
    Value best = items[0];
    for (size_t i = 1; i < items.size(); ++i) {
      ASSIGN_OR_RETURN(int c, Order(items[i], best, "<", budget));
      if ((name == "min" && c < 0) || (name == "max" && c > 0)) best = items[i];
    }
    return best;
  }
  if (name == "sum") {
    ASSIGN_OR_RETURN(List items, Iterate(input, budget));
    Value total(int64_t{0});
    for (const Value& v : items) {
      ASSIGN_OR_RETURN(total, BinaryOp("+", total, v, budget));
    }
    return total;
  }
  return TypeError(absl::StrCat("unsupported filter '", name, "'"));
}

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, const CallArgs& args, Budget& budget) {
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
    RETURN_IF_ERROR(budget.ChargeBytes(v.as_string().size()));
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
  if (name == "eq" || name == "equalto" || name == "==" || name == "ne" || name == "!=") {
    return Compare(name == "ne" || name == "!=" ? "!=" : "==", v, arg, budget);
  }
  if (name == "sameas") {
    if (v.kind() != arg.kind()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.is_bool()) return v.as_bool() == arg.as_bool();
    return false;
  }
  if (name == "in") return Contains(arg, v, budget);
  for (std::string_view op : {"lt", "<", "le", "<=", "gt", ">", "ge", ">="}) {
    if (name != op) continue;
    std::string sym(op);
    if (op == "lt") sym = "<";
    if (op == "le") sym = "<=";
    if (op == "gt") sym = ">";
    if (op == "ge") sym = ">=";
    return Compare(sym, v, arg, budget);
  }
  return TypeError(absl::StrCat("unsupported test '", name, "'"));
}

absl::StatusOr<bool> Compare(const std::string& op, const Value& a, const Value& b, Budget& budget) {
  if (op == "==" || op == "!=") {
    ASSIGN_OR_RETURN(bool same, Equal(a, b, budget));
    return same == (op == "==");
  }
  if (op == "in") return Contains(b, a, budget);
  if (op == "notin") {
    ASSIGN_OR_RETURN(bool in, Contains(b, a, budget));
    return !in;
  }
  ASSIGN_OR_RETURN(int c, Order(a, b, op, budget));
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  if (op == ">=") return c >= 0;
  return TypeError(absl::StrCat("unknown comparison '", op, "'"));
}

absl::StatusOr<Value> BinaryOp(const std::string& op, const Value& a, const Value& b, Budget& budget) {
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
      const size_t size = a.as_string().size() + b.as_string().size();
      if (size > MaxString(budget)) return TypeError("string too large");
      RETURN_IF_ERROR(budget.ChargeBytes(size));
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      RETURN_IF_ERROR(budget.Charge(static_cast<int64_t>(a.as_list().size() + b.as_list().size())));
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
      if (unit != 0 && static_cast<uint64_t>(n) > MaxString(budget) / unit) {
        return TypeError("repeated sequence too large");
      }
      const int64_t total = n * static_cast<int64_t>(unit);
      RETURN_IF_ERROR(seq.is_string() ? budget.ChargeBytes(static_cast<size_t>(total))
                                      : budget.Charge(std::max<int64_t>(n, total)));
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
  return TypeError(
      absl::StrCat("unsupported operand type(s) for ", op, ": '", a.TypeName(), "' and '", b.TypeName(), "'"));
}

absl::StatusOr<std::string> ToStr(const Value& v, Budget& budget) {
  if (v.is_string()) {
    RETURN_IF_ERROR(budget.ChargeBytes(v.as_string().size()));
    return v.as_string();
  }
  std::string out;
  const bool fits = AppendStr(v, MaxString(budget), &out);
  RETURN_IF_ERROR(budget.ChargeBytes(out.size()));
  if (!fits) {
    return TypeError(absl::StrCat("string longer than the limit of ", MaxString(budget), " bytes"));
  }
  return out;
}

std::string ShortRepr(const Value& v, size_t max_bytes) {
  std::string out;
  if (!AppendRepr(v, max_bytes, &out)) out += "...";
  return out;
}

}  // namespace moeserve::jinja

#include "server/tokenizer/template/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/tokenizer/unicode.h"

namespace moeserve::jinja {

struct Value::DictBox {
  Dict dict;
  int depth = 1;
};

size_t Dict::IndexOf(std::string_view key) const {
  if (!index_.empty()) {
    const auto it = index_.find(absl::string_view(key.data(), key.size()));
    return it == index_.end() ? entries_.size() : it->second;
  }
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].first == key) return i;
  }
  return entries_.size();
}

const Value* Dict::Find(std::string_view key) const {
  const size_t i = IndexOf(key);
  return i == entries_.size() ? nullptr : &entries_[i].second;
}

void Dict::Set(std::string key, Value value) {
  const size_t i = IndexOf(key);
  if (i < entries_.size()) {
    entries_[i].second = std::move(value);
    return;
  }
  Append(std::move(key), std::move(value));
}

void Dict::Append(std::string key, Value value) {
  entries_.emplace_back(std::move(key), std::move(value));
  if (!index_.empty()) {
    index_.emplace(entries_.back().first, entries_.size() - 1);
  } else if (entries_.size() > kIndexFrom) {
    for (size_t j = 0; j < entries_.size(); ++j) index_.emplace(entries_[j].first, j);
  }
}

namespace {

int ItemDepth(const Value& v) { return v.depth(); }

}  // namespace

Value::Value(List l) {
  int depth = 0;
  for (const Value& v : l) depth = std::max(depth, ItemDepth(v));
  data_ = std::make_shared<const ListBox>(ListBox{std::move(l), depth + 1});
}

Value::Value(Dict d) {
  int depth = 0;
  for (const auto& [k, v] : d.entries()) depth = std::max(depth, ItemDepth(v));
  data_ = std::make_shared<const DictBox>(DictBox{std::move(d), depth + 1});
}

const Dict& Value::as_dict() const { return std::get<std::shared_ptr<const DictBox>>(data_)->dict; }

int Value::depth() const {
  switch (kind()) {
    case Kind::kList: return std::get<std::shared_ptr<const ListBox>>(data_)->depth;
    case Kind::kDict: return std::get<std::shared_ptr<const DictBox>>(data_)->depth;
    default: return 0;
  }
}

Value Value::Undefined(std::string message) {
  Value v;
  v.data_ = UndefinedTag{std::make_shared<const std::string>(std::move(message))};
  return v;
}

Value Value::MakeNamespace(Dict attrs) {
  Value v;
  v.data_ = std::make_shared<Namespace>(Namespace{std::move(attrs)});
  return v;
}

Value Value::MakeCallable(std::string name, std::function<absl::StatusOr<Value>(const CallArgs&, Budget&)> fn) {
  Value v;
  v.data_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

absl::StatusOr<Value> Value::FromJson(const nlohmann::ordered_json& json, int max_depth) {
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null: return None();
    case nlohmann::ordered_json::value_t::boolean: return Value(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(json.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = json.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(json.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(json.get<std::string>());
    case nlohmann::ordered_json::value_t::array:
    case nlohmann::ordered_json::value_t::object: break;
    default: return None();  // binary / discarded: not produced by JSON parsing
  }
  if (max_depth <= 0) {
    return absl::InvalidArgumentError("template variable nests lists and objects too deeply");
  }
  if (json.is_array()) {
    List list;
    list.reserve(json.size());
    for (const auto& item : json) {
      ASSIGN_OR_RETURN(Value v, FromJson(item, max_depth - 1));
      list.push_back(std::move(v));
    }
    return Value(std::move(list));
  }
  Dict dict;
  dict.Reserve(json.size());
  for (const auto& [k, item] : json.items()) {
    ASSIGN_OR_RETURN(Value v, FromJson(item, max_depth - 1));
    dict.Append(k, std::move(v));  // JSON object keys are unique
  }
  return Value(std::move(dict));
}

Value::Kind Value::kind() const { return static_cast<Kind>(data_.index()); }

int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  return std::get<int64_t>(data_);
}

double Value::as_float() const {
  if (is_float()) return std::get<double>(data_);
  return static_cast<double>(as_int());
}

const std::string& Value::undefined_message() const {
  static const std::string* const kDefault = new std::string("value is undefined");
  const auto& name = std::get<UndefinedTag>(data_).name;
  return name != nullptr ? *name : *kDefault;
}

bool Value::Truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return as_bool();
    case Kind::kInt: return as_int() != 0;
    case Kind::kFloat: return as_float() != 0.0;
    case Kind::kString: return !as_string().empty();
    case Kind::kList: return !as_list().empty();
    case Kind::kDict: return as_dict().size() != 0;
    case Kind::kNamespace:
    case Kind::kCallable: return true;
  }
  return false;
}

std::string FormatFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then Python's repr layout: fixed notation when the decimal
  // exponent is in [-4, 16), else d[.ddd]e[+-]XX.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (!sci.empty() && sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp10 = std::stoi(sci.substr(e + 1));
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
  std::string out = sign;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(-decpt, '0') + digits;
    } else if (static_cast<size_t>(decpt) >= digits.size()) {
      out += digits + std::string(decpt - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, decpt) + "." + digits.substr(decpt);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exp_buf[16];
  std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
  return out + exp_buf;
}

namespace {

std::string ReprString(const std::string& s) {
  const bool use_double = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char quote = use_double ? '"' : '\'';
  std::string out(1, quote);
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (ch == quote || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += quote;
  return out;
}

// An output string that refuses to grow past a byte limit.
class BoundedOut {
 public:
  BoundedOut(size_t max_bytes, std::string* out) : max_bytes_(max_bytes), out_(out) {}
  // False (with what fits appended) once the limit is passed.
  bool Put(std::string_view s) {
    const size_t room = out_->size() < max_bytes_ ? max_bytes_ - out_->size() : 0;
    if (s.size() > room) {
      out_->append(s.substr(0, room));
      return false;
    }
    out_->append(s);
    return true;
  }

 private:
  const size_t max_bytes_;
  std::string* const out_;
};

bool PutRepr(const Value& v, BoundedOut& out);

bool PutStr(const Value& v, BoundedOut& out) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return true;
    case Value::Kind::kNone: return out.Put("None");
    case Value::Kind::kBool: return out.Put(v.as_bool() ? "True" : "False");
    case Value::Kind::kInt: return out.Put(std::to_string(v.as_int()));
    case Value::Kind::kFloat: return out.Put(FormatFloat(v.as_float()));
    case Value::Kind::kString: return out.Put(v.as_string());
    default: return PutRepr(v, out);
  }
}

bool PutRepr(const Value& v, BoundedOut& out) {
  switch (v.kind()) {
    case Value::Kind::kString: return out.Put(ReprString(v.as_string()));
    case Value::Kind::kList: {
      if (!out.Put("[")) return false;
      bool first = true;
      for (const Value& item : v.as_list()) {
        if (!first && !out.Put(", ")) return false;
        first = false;
        if (!PutRepr(item, out)) return false;
      }
      return out.Put("]");
    }
    case Value::Kind::kDict: {
      if (!out.Put("{")) return false;
      bool first = true;
      for (const auto& [k, item] : v.as_dict().entries()) {
        if (!first && !out.Put(", ")) return false;
        first = false;
        if (!out.Put(ReprString(k)) || !out.Put(": ") || !PutRepr(item, out)) return false;
      }
      return out.Put("}");
    }
    case Value::Kind::kNamespace: return out.Put("<Namespace>");
    case Value::Kind::kCallable: return out.Put("<function " + v.as_callable().name + ">");
    default: return PutStr(v, out);
  }
}

}  // namespace

bool AppendStr(const Value& v, size_t max_bytes, std::string* out) {
  BoundedOut bounded(max_bytes, out);
  return PutStr(v, bounded);
}

bool AppendRepr(const Value& v, size_t max_bytes, std::string* out) {
  BoundedOut bounded(max_bytes, out);
  return PutRepr(v, bounded);
}

std::string Value::Str() const {
  std::string out;
  AppendStr(*this, SIZE_MAX, &out);
  return out;
}

std::string Value::Repr() const {
  std::string out;
  AppendRepr(*this, SIZE_MAX, &out);
  return out;
}

std::string Value::TypeName() const {
  switch (kind()) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "Namespace";
    case Kind::kCallable: return "function";
  }
  return "object";
}

absl::StatusOr<bool> Equal(const Value& a, const Value& b, Budget& budget) {
  using K = Value::Kind;
  RETURN_IF_ERROR(budget.Charge());
  const bool a_num = a.is_number() || a.is_bool();
  const bool b_num = b.is_number() || b.is_bool();
  if (a_num && b_num) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::kUndefined:
    case K::kNone: return true;
    case K::kString:
      if (a.as_string().size() != b.as_string().size()) return false;
      RETURN_IF_ERROR(budget.ChargeBytes(a.as_string().size()));
      return a.as_string() == b.as_string();
    case K::kList: {
      const List& x = a.as_list();
      const List& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        ASSIGN_OR_RETURN(bool same, Equal(x[i], y[i], budget));
        if (!same) return false;
      }
      return true;
    }
    case K::kDict: {
      const Dict& x = a.as_dict();
      const Dict& y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        RETURN_IF_ERROR(budget.ChargeBytes(k.size()));
        const Value* w = y.Find(k);
        if (w == nullptr) return false;
        ASSIGN_OR_RETURN(bool same, Equal(v, *w, budget));
        if (!same) return false;
      }
      return true;
    }
    case K::kNamespace: return &a.as_namespace() == &b.as_namespace();
    case K::kCallable: return &a.as_callable() == &b.as_callable();
    default: return false;
  }
}

namespace {

void AppendJsonString(const std::string& s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  size_t pos = 0;
  while (pos < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[pos]);
    if (c >= 0x80) {
      if (!ensure_ascii) {
        const size_t len = Utf8CharLength(s[pos]);
        out->append(s, pos, len);
        pos += len;
        continue;
      }
      const uint32_t cp = DecodeUtf8Char(s, &pos);
      char buf[16];
      if (cp >= 0x10000) {
        const uint32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      }
      out->append(buf);
      continue;
    }
    ++pos;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

absl::Status AppendJson(const Value& v, const JsonOptions& o, int depth, std::string* out) {
  if (depth > 512) return absl::InvalidArgumentError("tojson: value nested too deeply");
  if (out->size() > o.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("tojson: output longer than ", o.max_bytes, " bytes"));
  }
  auto newline = [&](int d) {
    if (!o.indent.has_value()) return;
    out->push_back('\n');
    out->append(static_cast<size_t>(*o.indent) * d, ' ');
  };
  switch (v.kind()) {
    case Value::Kind::kNone: out->append("null"); return absl::OkStatus();
    case Value::Kind::kBool: out->append(v.as_bool() ? "true" : "false"); return absl::OkStatus();
    case Value::Kind::kInt: out->append(std::to_string(v.as_int())); return absl::OkStatus();
    case Value::Kind::kFloat: {
      const double d = v.as_float();
      if (std::isnan(d))
        out->append("NaN");
      else if (std::isinf(d))
        out->append(d > 0 ? "Infinity" : "-Infinity");
      else
        out->append(FormatFloat(d));
      return absl::OkStatus();
    }
    case Value::Kind::kString: AppendJsonString(v.as_string(), o.ensure_ascii, out); return absl::OkStatus();
    case Value::Kind::kList: {
      const List& list = v.as_list();
      if (list.empty()) {
        out->append("[]");
        return absl::OkStatus();
      }
      out->push_back('[');
      for (size_t i = 0; i < list.size(); ++i) {
        if (i > 0) out->append(o.item_separator);
        newline(depth + 1);
        RETURN_IF_ERROR(AppendJson(list[i], o, depth + 1, out));
      }
      newline(depth);
      out->push_back(']');
      return absl::OkStatus();
    }
    case Value::Kind::kDict: {
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.as_dict().entries()) entries.push_back(&e);
      if (entries.empty()) {
        out->append("{}");
        return absl::OkStatus();
      }
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      out->push_back('{');
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) out->append(o.item_separator);
        newline(depth + 1);
        AppendJsonString(entries[i]->first, o.ensure_ascii, out);
        out->append(o.key_separator);
        RETURN_IF_ERROR(AppendJson(entries[i]->second, o, depth + 1, out));
      }
      newline(depth);
      out->push_back('}');
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("Object of type ", v.TypeName(), " is not JSON serializable"));
  }
}

}  // namespace

absl::StatusOr<std::string> ToJson(const Value& value, const JsonOptions& options) {
  std::string out;
  RETURN_IF_ERROR(AppendJson(value, options, 0, &out));
  if (out.size() > options.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("tojson: output longer than ", options.max_bytes, " bytes"));
  }
  return out;
}

}  // namespace moeserve::jinja

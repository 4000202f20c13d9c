#include "server/structured/json_schema.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "server/common/status_macros.h"
#include "server/structured/json_terminals.h"
#include "server/structured/regex_parser.h"
#include "server/structured/text_util.h"

namespace moeserve::structured {
namespace {

using Json = nlohmann::ordered_json;

constexpr int32_t kMaxCount = 1024;  // maxLength / maxItems cap, minLength / minItems limit
constexpr int32_t kMaxWhitespace = 32;
constexpr size_t kMaxExcludedNameChars = 200;

enum TypeBit : uint8_t {
  kNull = 1,
  kBoolean = 2,
  kObject = 4,
  kArray = 8,
  kNumber = 16,
  kString = 32,
  kInteger = 64,
  kAllTypes = 127,
};

const absl::flat_hash_set<std::string>& AnnotationKeywords() {
  static const auto* s = new absl::flat_hash_set<std::string>{
      "title",         "description", "default",     "examples",   "$comment",        "$schema",
      "$id",           "readOnly",    "writeOnly",   "deprecated", "contentEncoding", "contentMediaType",
      "discriminator", "$defs",       "definitions", "$anchor"};
  return *s;
}

const absl::flat_hash_set<std::string>& SupportedKeywords() {
  static const auto* s = new absl::flat_hash_set<std::string>{"type",
                                                              "enum",
                                                              "const",
                                                              "anyOf",
                                                              "oneOf",
                                                              "allOf",
                                                              "$ref",
                                                              "nullable",
                                                              "properties",
                                                              "required",
                                                              "additionalProperties",
                                                              "items",
                                                              "prefixItems",
                                                              "additionalItems",
                                                              "minItems",
                                                              "maxItems",
                                                              "minLength",
                                                              "maxLength",
                                                              "pattern",
                                                              "format",
                                                              "minimum",
                                                              "maximum",
                                                              "exclusiveMinimum",
                                                              "exclusiveMaximum"};
  return *s;
}

// Keywords that only constrain instances of one type.
uint8_t ImpliedType(const std::string& keyword) {
  if (keyword == "properties" || keyword == "required" || keyword == "additionalProperties") return kObject;
  if (keyword == "items" || keyword == "prefixItems" || keyword == "additionalItems" || keyword == "minItems" ||
      keyword == "maxItems") {
    return kArray;
  }
  if (keyword == "minLength" || keyword == "maxLength" || keyword == "pattern" || keyword == "format") return kString;
  if (keyword == "minimum" || keyword == "maximum" || keyword == "exclusiveMinimum" || keyword == "exclusiveMaximum") {
    return kNumber | kInteger;
  }
  return 0;
}

absl::StatusOr<uint8_t> TypeBitOf(const Json& name, const std::string& path) {
  if (name.is_string()) {
    const std::string& n = name.get_ref<const std::string&>();
    if (n == "null") return kNull;
    if (n == "boolean") return kBoolean;
    if (n == "object") return kObject;
    if (n == "array") return kArray;
    if (n == "number") return kNumber;
    if (n == "string") return kString;
    if (n == "integer") return kInteger;
  }
  return absl::InvalidArgumentError(absl::StrCat("json_schema: unknown type ", name.dump(), " at ", path));
}

// The JSON type bit of a value (integral numbers count as integers and numbers).
uint8_t ValueTypes(const Json& v) {
  if (v.is_null()) return kNull;
  if (v.is_boolean()) return kBoolean;
  if (v.is_object()) return kObject;
  if (v.is_array()) return kArray;
  if (v.is_string()) return kString;
  if (v.is_number_integer()) return kInteger | kNumber;
  if (v.is_number_float()) {
    const double d = v.get<double>();
    return std::isfinite(d) && d == std::floor(d) ? (kInteger | kNumber) : kNumber;
  }
  return 0;
}

// Unescapes one JSON pointer token (RFC 6901) taken from a URI fragment (%XX decoded first).
std::string PointerToken(std::string_view token) {
  std::string decoded;
  for (size_t i = 0; i < token.size(); ++i) {
    if (token[i] == '%' && i + 2 < token.size() && HexValue(token[i + 1]) >= 0 && HexValue(token[i + 2]) >= 0) {
      decoded.push_back(static_cast<char>(HexValue(token[i + 1]) * 16 + HexValue(token[i + 2])));
      i += 2;
    } else {
      decoded.push_back(token[i]);
    }
  }
  std::string out;
  for (size_t i = 0; i < decoded.size(); ++i) {
    if (decoded[i] == '~' && i + 1 < decoded.size() && (decoded[i + 1] == '0' || decoded[i + 1] == '1')) {
      out.push_back(decoded[i + 1] == '0' ? '~' : '/');
      ++i;
    } else {
      out.push_back(decoded[i]);
    }
  }
  return out;
}

// A readable rule name from a location ("#/properties/a b" -> "properties-a-b").
std::string RuleName(const std::string& path) {
  std::string name;
  for (char c : path) {
    const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (word) {
      name.push_back(c);
    } else if (!name.empty() && name.back() != '-') {
      name.push_back('-');
    }
  }
  while (!name.empty() && name.back() == '-') name.pop_back();
  return name.empty() ? "root" : name;
}

class SchemaConverter {
 public:
  SchemaConverter(const Json& root, const JsonSchemaOptions& options) : root_(root), options_(options) {}

  absl::StatusOr<Grammar> Run() {
    const int32_t root = Rule("#");
    pending_.push_back({root, "#"});
    while (!pending_.empty()) {
      auto [rule, pointer] = pending_.front();
      pending_.pop_front();
      ASSIGN_OR_RETURN(const Json* schema, Resolve(pointer));
      ASSIGN_OR_RETURN(Expr body, Convert(*schema, pointer));
      g_.rules[rule].body = std::move(body);
    }
    if (options_.any_whitespace) {
      // Whitespace around the whole document.
      const int32_t doc = g_.AddRule("document");
      g_.rules[doc].body = Seq({Ws(), Ref(root), Ws()});
      g_.root = doc;
    } else {
      g_.root = root;
    }
    return std::move(g_);
  }

  // The grammar of any JSON value (or object) without a schema.
  Grammar AnyValue(bool object_only) {
    const int32_t value = AnyValueRule();
    const int32_t root = g_.AddRule("root");
    g_.rules[root].body = Seq({Ws(), object_only ? AnyObject() : Ref(value), Ws()});
    g_.root = root;
    return std::move(g_);
  }

 private:
  Expr Ws() const {
    return options_.any_whitespace
               ? Repeat(Class(Canonicalize({{'\t', '\n'}, {'\r', '\r'}, {' ', ' '}})), 0, kMaxWhitespace)
               : Empty();
  }
  // A structural character with optional whitespace around it.
  Expr Punct(std::string_view c) const { return Seq({Ws(), Literal(c), Ws()}); }

  int32_t Rule(const std::string& pointer) {
    auto it = rule_of_pointer_.find(pointer);
    if (it != rule_of_pointer_.end()) return it->second;
    const int32_t id = g_.AddRule(RuleName(pointer));
    rule_of_pointer_.emplace(pointer, id);
    return id;
  }

  absl::StatusOr<const Json*> Resolve(const std::string& pointer) {
    if (pointer.empty() || pointer[0] != '#') {
      return absl::InvalidArgumentError(
          absl::StrCat("json_schema: $ref \"", pointer, "\" is not local (only \"#...\" references are supported)"));
    }
    const Json* node = &root_;
    if (pointer.size() == 1) return node;
    if (pointer[1] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("json_schema: $ref \"", pointer, "\": anchors are not supported, use a JSON pointer"));
    }
    size_t start = 2;
    while (true) {
      const size_t slash = pointer.find('/', start);
      const std::string token = PointerToken(
          std::string_view(pointer).substr(start, slash == std::string::npos ? std::string::npos : slash - start));
      if (node->is_object() && node->contains(token)) {
        node = &(*node)[token];
      } else if (node->is_array() && !token.empty() &&
                 std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                 token.size() < 9 && std::stoul(token) < node->size()) {
        node = &(*node)[std::stoul(token)];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("json_schema: $ref \"", pointer, "\" does not resolve"));
      }
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return node;
  }

  int32_t AnyValueRule() {
    if (any_value_ >= 0) return any_value_;
    any_value_ = g_.AddRule("value");
    const int32_t value = any_value_;
    g_.rules[value].body = Choice({AnyObject(), AnyArray(), Seq({Literal("\""), Star(JsonStringChar()), Literal("\"")}),
                                   JsonNumber(), Literal("true"), Literal("false"), Literal("null")});
    return value;
  }
  Expr AnyObject() {
    const int32_t value = AnyValueRule();
    const Expr key = Seq({Literal("\""), Star(JsonStringChar()), Literal("\"")});
    const Expr member = Seq({key, Punct(":"), Ref(value)});
    return Seq({Literal("{"), Ws(), Optional(Seq({member, Star(Seq({Punct(","), member}))})), Ws(), Literal("}")});
  }
  Expr AnyArray() {
    const int32_t value = AnyValueRule();
    return Seq(
        {Literal("["), Ws(), Optional(Seq({Ref(value), Star(Seq({Punct(","), Ref(value)}))})), Ws(), Literal("]")});
  }

  absl::Status Unsupported(const std::string& keyword, const std::string& path) {
    return absl::InvalidArgumentError(absl::StrCat("json_schema: unsupported keyword '", keyword, "' at ", path));
  }

  absl::StatusOr<Expr> Convert(const Json& s, const std::string& path) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return Ref(AnyValueRule());
      return Nothing();
    }
    if (!s.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("json_schema: the schema at ", path, " is not an object or boolean"));
    }
    std::vector<std::string> validators;  // supported validation keywords present
    uint8_t implied = 0;
    for (const auto& [key, value] : s.items()) {
      if (AnnotationKeywords().contains(key) || key.rfind("x-", 0) == 0) continue;
      if (!SupportedKeywords().contains(key)) return Unsupported(key, path);
      validators.push_back(key);
      implied |= ImpliedType(key);
    }
    if (s.contains("$ref")) {
      for (const std::string& k : validators) {
        if (k != "$ref") {
          return absl::InvalidArgumentError(
              absl::StrCat("json_schema: '$ref' beside '", k, "' is not supported at ", path));
        }
      }
      if (!s["$ref"].is_string())
        return absl::InvalidArgumentError(absl::StrCat("json_schema: $ref is not a string at ", path));
      const std::string target = s["$ref"].get<std::string>();
      if (!rule_of_pointer_.contains(target)) {
        ASSIGN_OR_RETURN(const Json* resolved, Resolve(target));
        (void)resolved;
        pending_.push_back({Rule(target), target});
      }
      return Ref(Rule(target));
    }
    for (const char* combinator : {"anyOf", "oneOf", "allOf"}) {
      if (!s.contains(combinator)) continue;
      for (const std::string& k : validators) {
        if (k != combinator && k != "nullable") {
          return absl::InvalidArgumentError(
              absl::StrCat("json_schema: '", combinator, "' beside '", k, "' is not supported at ", path));
        }
      }
      const Json& list = s[combinator];
      if (!list.is_array() || list.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("json_schema: ", combinator, " must be a non-empty array at ", path));
      }
      if (std::string_view(combinator) == "allOf" && list.size() != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("json_schema: allOf with more than one schema is not supported at ", path));
      }
      std::vector<Expr> alts;
      for (size_t i = 0; i < list.size(); ++i) {
        ASSIGN_OR_RETURN(Expr e, Sub(list[i], absl::StrCat(path, "/", combinator, "/", i)));
        alts.push_back(std::move(e));
      }
      if (s.value("nullable", false)) alts.push_back(Literal("null"));
      return Choice(std::move(alts));
    }

    uint8_t types = kAllTypes;
    if (s.contains("type")) {
      const Json& t = s["type"];
      types = 0;
      if (t.is_array()) {
        for (const Json& name : t) {
          ASSIGN_OR_RETURN(const uint8_t bit, TypeBitOf(name, path));
          types |= bit;
        }
      } else {
        ASSIGN_OR_RETURN(types, TypeBitOf(t, path));
      }
    } else if (implied != 0) {
      types = implied;
    }
    if (s.value("nullable", false)) types |= kNull;

    if (s.contains("const") || s.contains("enum")) {
      std::vector<Json> values;
      if (s.contains("const")) {
        values.push_back(s["const"]);
      } else {
        if (!s["enum"].is_array())
          return absl::InvalidArgumentError(absl::StrCat("json_schema: enum is not an array at ", path));
        for (const Json& v : s["enum"]) values.push_back(v);
      }
      std::vector<Expr> alts;
      for (const Json& v : values) {
        if (ValueTypes(v) & types) alts.push_back(Literal(v.dump()));
      }
      if (alts.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("json_schema: no enum/const value has the schema's type at ", path));
      }
      return Choice(std::move(alts));
    }

    std::vector<Expr> alts;
    if (types & kObject) {
      ASSIGN_OR_RETURN(Expr e, Object(s, path));
      alts.push_back(std::move(e));
    }
    if (types & kArray) {
      ASSIGN_OR_RETURN(Expr e, Array(s, path));
      alts.push_back(std::move(e));
    }
    if (types & kString) {
      ASSIGN_OR_RETURN(Expr e, String(s, path));
      alts.push_back(std::move(e));
    }
    if (types & kNumber) {
      ASSIGN_OR_RETURN(Expr e, Number(s, path, /*integer=*/false));
      alts.push_back(std::move(e));
    } else if (types & kInteger) {
      ASSIGN_OR_RETURN(Expr e, Number(s, path, /*integer=*/true));
      alts.push_back(std::move(e));
    }
    if (types & kBoolean) alts.push_back(Choice({Literal("true"), Literal("false")}));
    if (types & kNull) alts.push_back(Literal("null"));
    return Choice(std::move(alts));
  }

  // A subschema as a rule of its own (the inliner decides whether it stays one).
  absl::StatusOr<Expr> Sub(const Json& s, const std::string& path) {
    ASSIGN_OR_RETURN(Expr e, Convert(s, path));
    if (e.kind == Expr::Kind::kRuleRef || e.kind == Expr::Kind::kLiteral) return e;
    const int32_t rule = g_.AddRule(RuleName(path));
    g_.rules[rule].body = std::move(e);
    return Ref(rule);
  }

  absl::StatusOr<std::optional<int64_t>> Count(const Json& s, const char* key, const std::string& path) {
    if (!s.contains(key)) return std::optional<int64_t>();
    const Json& v = s[key];
    if (!v.is_number() || ValueTypes(v) == kNumber || v.get<double>() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("json_schema: ", key, " must be a non-negative integer at ", path));
    }
    const double d = v.get<double>();
    return std::optional<int64_t>(d > 1e15 ? int64_t{1} << 50 : static_cast<int64_t>(d));
  }

  // [min, max] of a count, with the caps described in the header; max -1: unbounded.
  absl::StatusOr<std::pair<int32_t, int32_t>> Counts(const Json& s, const char* min_key, const char* max_key,
                                                     const std::string& path) {
    ASSIGN_OR_RETURN(std::optional<int64_t> min, Count(s, min_key, path));
    ASSIGN_OR_RETURN(std::optional<int64_t> max, Count(s, max_key, path));
    const int64_t lo = min.value_or(0);
    if (lo > kMaxCount) {
      return absl::InvalidArgumentError(
          absl::StrCat("json_schema: ", min_key, " ", lo, " is above the supported ", kMaxCount, " at ", path));
    }
    if (max.has_value() && *max < lo) {
      return absl::InvalidArgumentError(absl::StrCat("json_schema: ", max_key, " < ", min_key, " at ", path));
    }
    int64_t hi = max.has_value() ? std::min<int64_t>(*max, kMaxCount) : -1;
    return std::make_pair(static_cast<int32_t>(lo), static_cast<int32_t>(hi));
  }

  absl::StatusOr<Expr> String(const Json& s, const std::string& path) {
    std::vector<Expr> parts;
    if (s.contains("format")) {
      if (!s["format"].is_string())
        return absl::InvalidArgumentError(absl::StrCat("json_schema: format is not a string at ", path));
      absl::StatusOr<Expr> f = FormatLanguage(s["format"].get<std::string>());
      if (!f.ok()) return absl::InvalidArgumentError(absl::StrCat("json_schema: ", f.status().message(), " at ", path));
      parts.push_back(JsonEscape(*f));
    }
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string())
        return absl::InvalidArgumentError(absl::StrCat("json_schema: pattern is not a string at ", path));
      absl::StatusOr<Expr> p = ParseRegex(s["pattern"].get<std::string>());
      if (!p.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("json_schema: pattern at ", path, ": ", p.status().message()));
      }
      parts.push_back(JsonEscape(*p));
    }
    if (s.contains("minLength") || s.contains("maxLength")) {
      ASSIGN_OR_RETURN(const auto counts, Counts(s, "minLength", "maxLength", path));
      parts.push_back(Repeat(JsonStringChar(), counts.first, counts.second));
    }
    if (parts.empty()) parts.push_back(Star(JsonStringChar()));
    return Seq({Literal("\""), Intersect(std::move(parts)), Literal("\"")});
  }

  // A bound keyword as an integer, for integers rounded inward.
  absl::StatusOr<std::optional<NumberBound>> Bound(const Json& s, const char* key, const char* exclusive_key,
                                                   bool lower, bool integer, const std::string& path) {
    std::optional<NumberBound> out;
    auto take = [&](const Json& v, bool exclusive, const char* name) -> absl::Status {
      if (!v.is_number())
        return absl::InvalidArgumentError(absl::StrCat("json_schema: ", name, " is not a number at ", path));
      const double d = v.get<double>();
      NumberBound b;
      if (v.is_number_integer()) {
        b.value = v.is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(), INT64_MAX))
                                         : v.get<int64_t>();
        b.exclusive = exclusive;
      } else {
        if (!std::isfinite(d))
          return absl::InvalidArgumentError(absl::StrCat("json_schema: ", name, " is not finite at ", path));
        if (d == std::floor(d) && std::fabs(d) < 9.2e18) {
          b.value = static_cast<int64_t>(d);
          b.exclusive = exclusive;
        } else if (integer) {
          const double r = lower ? std::ceil(d) : std::floor(d);
          if (std::fabs(r) >= 9.2e18) {
            // Beyond int64: the bound excludes nothing we generate, or everything.
            if ((lower && r < 0) || (!lower && r > 0)) return absl::OkStatus();
            b.value = lower ? INT64_MAX : INT64_MIN;
          } else {
            b.value = static_cast<int64_t>(r);
          }
          b.exclusive = false;
        } else {
          return absl::InvalidArgumentError(absl::StrCat("json_schema: ", name, " ", v.dump(),
                                                         " of a number is not supported at ", path,
                                                         " (number bounds must be integers)"));
        }
      }
      if (integer && b.exclusive) {
        b.value += lower ? (b.value == INT64_MAX ? 0 : 1) : (b.value == INT64_MIN ? 0 : -1);
        b.exclusive = false;
      }
      // Keep the tighter of `minimum` and `exclusiveMinimum` (or the maxima).
      if (!out.has_value() || (lower ? (b.value > out->value || (b.value == out->value && b.exclusive))
                                     : (b.value < out->value || (b.value == out->value && b.exclusive)))) {
        out = b;
      }
      return absl::OkStatus();
    };
    if (s.contains(key)) RETURN_IF_ERROR(take(s[key], false, key));
    if (s.contains(exclusive_key)) {
      const Json& e = s[exclusive_key];
      if (e.is_boolean()) {  // draft 4: modifies `key`
        if (e.get<bool>() && out.has_value()) {
          out->exclusive = true;
          if (integer) {
            out->value += lower ? 1 : -1;
            out->exclusive = false;
          }
        }
      } else {
        RETURN_IF_ERROR(take(e, true, exclusive_key));
      }
    }
    return out;
  }

  absl::StatusOr<Expr> Number(const Json& s, const std::string& path, bool integer) {
    ASSIGN_OR_RETURN(const std::optional<NumberBound> lo, Bound(s, "minimum", "exclusiveMinimum", true, integer, path));
    ASSIGN_OR_RETURN(const std::optional<NumberBound> hi,
                     Bound(s, "maximum", "exclusiveMaximum", false, integer, path));
    if (!lo.has_value() && !hi.has_value()) return integer ? JsonInteger() : JsonNumber();
    if (integer) {
      return IntegerRange(lo.has_value() ? std::optional<int64_t>(lo->value) : std::nullopt,
                          hi.has_value() ? std::optional<int64_t>(hi->value) : std::nullopt);
    }
    return NumberRange(lo, hi);
  }

  absl::StatusOr<Expr> Object(const Json& s, const std::string& path) {
    struct Slot {
      Expr item;
      bool required;
      bool repeated;
    };
    std::vector<Slot> slots;
    std::vector<std::string> names;
    absl::flat_hash_set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array())
        return absl::InvalidArgumentError(absl::StrCat("json_schema: required is not an array at ", path));
      for (const Json& r : s["required"]) {
        if (!r.is_string())
          return absl::InvalidArgumentError(absl::StrCat("json_schema: required holds a non-string at ", path));
        required.insert(r.get<std::string>());
      }
    }
    const bool has_properties = s.contains("properties");
    if (has_properties) {
      const Json& props = s["properties"];
      if (!props.is_object())
        return absl::InvalidArgumentError(absl::StrCat("json_schema: properties is not an object at ", path));
      for (const auto& [name, sub] : props.items()) {
        ASSIGN_OR_RETURN(Expr value, Sub(sub, absl::StrCat(path, "/properties/", name)));
        const int32_t kv = g_.AddRule(RuleName(absl::StrCat(path, "/properties/", name, "/kv")));
        g_.rules[kv].body = Seq({JsonStringLiteral(name), Punct(":"), std::move(value)});
        slots.push_back({Ref(kv), required.contains(name), false});
        names.push_back(name);
      }
    }
    for (const std::string& r : required) {
      if (std::find(names.begin(), names.end(), r) == names.end()) {
        // A required property without a schema: any value, after the declared ones.
        const int32_t kv = g_.AddRule(RuleName(absl::StrCat(path, "/required/", r)));
        g_.rules[kv].body = Seq({JsonStringLiteral(r), Punct(":"), Ref(AnyValueRule())});
        slots.push_back({Ref(kv), true, false});
        names.push_back(r);
      }
    }
    // Additional properties: absent means none when properties are declared, any otherwise.
    std::optional<Expr> additional_value;
    if (s.contains("additionalProperties")) {
      const Json& a = s["additionalProperties"];
      if (!(a.is_boolean() && !a.get<bool>())) {
        ASSIGN_OR_RETURN(Expr v, Sub(a, path + "/additionalProperties"));
        additional_value = std::move(v);
      }
    } else if (!has_properties && required.empty()) {
      additional_value = Ref(AnyValueRule());
    }
    if (additional_value.has_value()) {
      for (const std::string& n : names) {
        if (n.size() > kMaxExcludedNameChars) {
          return absl::InvalidArgumentError(
              absl::StrCat("json_schema: a property name longer than ", kMaxExcludedNameChars,
                           " bytes beside additionalProperties is not supported at ", path));
        }
      }
      const Expr key = Seq({Literal("\""),
                            names.empty() ? Star(Class(Complement(Canonicalize({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}))))
                                          : ContentExcluding(names),
                            Literal("\"")});
      const int32_t kv = g_.AddRule(RuleName(path + "/additional"));
      g_.rules[kv].body = Seq({key, Punct(":"), *std::move(additional_value)});
      slots.push_back({Ref(kv), false, true});
    }
    // Members in slot order, commas between them: after(i) follows an emitted member,
    // first(i) starts the list.
    const int32_t n = static_cast<int32_t>(slots.size());
    std::vector<int32_t> after(n + 1), first(n + 1);
    for (int32_t i = n; i >= 0; --i) {
      after[i] = g_.AddRule(RuleName(absl::StrCat(path, "/after", i)));
      first[i] = g_.AddRule(RuleName(absl::StrCat(path, "/first", i)));
      if (i == n) continue;
      const Slot& slot = slots[i];
      const Expr comma_item = Seq({Punct(","), slot.item});
      if (slot.repeated) {
        g_.rules[after[i]].body = Star(comma_item);
        g_.rules[first[i]].body = Optional(Seq({slot.item, Star(comma_item)}));
      } else if (slot.required) {
        g_.rules[after[i]].body = Seq({comma_item, Ref(after[i + 1])});
        g_.rules[first[i]].body = Seq({slot.item, Ref(after[i + 1])});
      } else {
        g_.rules[after[i]].body = Seq({Optional(comma_item), Ref(after[i + 1])});
        g_.rules[first[i]].body = Choice({Seq({slot.item, Ref(after[i + 1])}), Ref(first[i + 1])});
      }
    }
    return Seq({Literal("{"), Ws(), Ref(first[0]), Ws(), Literal("}")});
  }

  absl::StatusOr<Expr> Array(const Json& s, const std::string& path) {
    std::vector<Expr> prefix;
    std::optional<Expr> rest;
    const Json* prefix_list = nullptr;
    const Json* rest_schema = nullptr;
    std::string rest_path;
    if (s.contains("prefixItems")) {
      prefix_list = &s["prefixItems"];
      if (s.contains("items")) {
        rest_schema = &s["items"];
        rest_path = path + "/items";
      }
    } else if (s.contains("items") && s["items"].is_array()) {  // draft 7 tuples
      prefix_list = &s["items"];
      if (s.contains("additionalItems")) {
        rest_schema = &s["additionalItems"];
        rest_path = path + "/additionalItems";
      }
    } else if (s.contains("items")) {
      rest_schema = &s["items"];
      rest_path = path + "/items";
    } else {
      rest_schema = nullptr;  // no `items`: any values
    }
    if (prefix_list != nullptr) {
      if (!prefix_list->is_array())
        return absl::InvalidArgumentError(absl::StrCat("json_schema: prefixItems is not an array at ", path));
      for (size_t i = 0; i < prefix_list->size(); ++i) {
        ASSIGN_OR_RETURN(Expr e, Sub((*prefix_list)[i], absl::StrCat(path, "/prefixItems/", i)));
        prefix.push_back(std::move(e));
      }
    }
    if (rest_schema != nullptr) {
      if (!(rest_schema->is_boolean() && !rest_schema->get<bool>())) {
        ASSIGN_OR_RETURN(Expr e, Sub(*rest_schema, rest_path));
        rest = std::move(e);
      }
    } else if (prefix_list == nullptr) {
      rest = Ref(AnyValueRule());
    }
    ASSIGN_OR_RETURN(const auto counts, Counts(s, "minItems", "maxItems", path));
    const int32_t min = counts.first, max = counts.second;
    const int32_t k = static_cast<int32_t>(prefix.size());
    if (!rest.has_value() && min > k) {
      return absl::InvalidArgumentError(
          absl::StrCat("json_schema: minItems ", min, " exceeds the ", k, " allowed items at ", path));
    }
    // Elements after the first j, built from the back: tail(j) follows j emitted elements.
    auto cap = [&](int32_t j) { return max >= 0 && j >= max; };
    Expr tail;  // for j >= k: the rest items by repetition
    if (rest.has_value()) {
      const int32_t lo = std::max(0, min - std::max(k, 1));
      const int32_t hi = max < 0 ? -1 : std::max(0, max - std::max(k, 1));
      tail = Repeat(Seq({Punct(","), *rest}), lo, hi);
    }
    Expr after = k >= 1 ? (cap(k) ? Empty() : tail) : Empty();
    for (int32_t j = k - 1; j >= 1; --j) {  // after j emitted: element j+1 is prefix[j]
      if (cap(j)) {
        after = Empty();
        continue;
      }
      Expr next = Seq({Punct(","), prefix[j], std::move(after)});
      after = j + 1 <= min ? std::move(next) : Optional(std::move(next));
    }
    Expr body;
    if (max == 0 || (k == 0 && !rest.has_value())) {
      body = Empty();
    } else {
      const Expr& first_item = k > 0 ? prefix[0] : *rest;
      Expr list = k > 0 ? Seq({first_item, std::move(after)}) : Seq({first_item, std::move(tail)});
      body = min >= 1 ? std::move(list) : Optional(std::move(list));
    }
    return Seq({Literal("["), Ws(), std::move(body), Ws(), Literal("]")});
  }

  const Json& root_;
  JsonSchemaOptions options_;
  Grammar g_;
  absl::flat_hash_map<std::string, int32_t> rule_of_pointer_;
  std::deque<std::pair<int32_t, std::string>> pending_;
  int32_t any_value_ = -1;
};

}  // namespace

absl::StatusOr<Grammar> JsonSchemaToGrammar(std::string_view text, const JsonSchemaOptions& options) {
  bool too_deep = false;
  Json schema;
  try {
    schema = Json::parse(
        text.begin(), text.end(),
        [&](int depth, Json::parse_event_t, Json&) {
          if (depth > options.max_nesting) too_deep = true;
          return !too_deep;
        },
        /*allow_exceptions=*/true);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("json_schema: invalid JSON: ", e.what()));
  }
  if (too_deep) {
    return absl::InvalidArgumentError(absl::StrCat("json_schema: nested deeper than ", options.max_nesting, " levels"));
  }
  if (!schema.is_object() && !schema.is_boolean()) {
    return absl::InvalidArgumentError("json_schema: the schema must be a JSON object or boolean");
  }
  return SchemaConverter(schema, options).Run();
}

Grammar AnyJsonGrammar(bool object_only, const JsonSchemaOptions& options) {
  static const Json* empty = new Json(Json::object());
  return SchemaConverter(*empty, options).AnyValue(object_only);
}

}  // namespace moeserve::structured

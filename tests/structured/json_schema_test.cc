// JSON Schema conversion: documents the grammar accepts and rejects, whitespace modes, and the
// errors for unsupported or broken schemas.

#include "server/structured/json_schema.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/structured/constraint_compiler.h"
#include "tests/structured/structured_test_util.h"

namespace moeserve::structured {
namespace {

using testing::CompileBytes;
using ::testing::HasSubstr;
using testing::Matches;

std::shared_ptr<const CompiledGrammar> Compile(const std::string& schema, bool any_whitespace = false) {
  absl::StatusOr<Grammar> g = JsonSchemaToGrammar(schema, {.any_whitespace = any_whitespace});
  EXPECT_TRUE(g.ok()) << g.status();
  if (!g.ok()) return nullptr;
  auto compiled = CompileBytes(*g);
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  return compiled.ok() ? *compiled : nullptr;
}

absl::Status Error(const std::string& schema) {
  ConstraintCompiler compiler(testing::ByteVocab());
  return compiler.Compile({.kind = Constraint::Kind::kJsonSchema, .value = schema}).status();
}

TEST(JsonSchema, ObjectPropertiesRequiredAndOrder) {
  auto g = Compile(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},
                       "c":{"type":"boolean"}},"required":["b"]})");
  EXPECT_TRUE(Matches(g, R"({"b":"x"})"));
  EXPECT_TRUE(Matches(g, R"({"a":1,"b":"x","c":true})"));
  EXPECT_TRUE(Matches(g, R"({"b":"","c":false})"));
  EXPECT_FALSE(Matches(g, R"({"a":1})"));          // b is required
  EXPECT_FALSE(Matches(g, R"({"b":"x","a":1})"));  // declared order
  EXPECT_FALSE(Matches(g, R"({"b":"x","d":1})"));  // no additional properties
  EXPECT_FALSE(Matches(g, R"({"b": "x"})"));       // compact by default
  EXPECT_FALSE(Matches(g, R"({"b":"x",})"));
}

TEST(JsonSchema, AnyWhitespace) {
  auto g = Compile(R"({"type":"object","properties":{"a":{"type":"array","items":{"type":"integer"}}}})", true);
  EXPECT_TRUE(Matches(g, "{ \"a\" : [ 1 , 2 ]\n}"));
  EXPECT_TRUE(Matches(g, "{\"a\":[]}"));
  EXPECT_TRUE(Matches(g, " {}\n"));
  EXPECT_FALSE(Matches(g, "{\"a\":[1 2]}"));
}

TEST(JsonSchema, AdditionalProperties) {
  auto schema_valued = Compile(R"({"properties":{"id":{"type":"integer"}},"additionalProperties":{"type":"number"}})");
  EXPECT_TRUE(Matches(schema_valued, R"({"id":1,"x":2.5,"y":-1})"));
  EXPECT_TRUE(Matches(schema_valued, R"({"x":2})"));
  EXPECT_FALSE(Matches(schema_valued, R"({"id":1,"x":"s"})"));
  EXPECT_FALSE(Matches(schema_valued, R"({"id":1,"id":2})"));  // a declared name is not additional
  EXPECT_TRUE(Matches(schema_valued, R"({"id":1,"idx":2})"));
  auto free = Compile(R"({"type":"object"})");
  EXPECT_TRUE(Matches(free, R"({"k":[1,{"n":null}],"s":"t"})"));
}

TEST(JsonSchema, ArraysAndTuples) {
  auto g = Compile(R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})");
  EXPECT_TRUE(Matches(g, "[1]"));
  EXPECT_TRUE(Matches(g, "[1,2,3]"));
  EXPECT_FALSE(Matches(g, "[]"));
  EXPECT_FALSE(Matches(g, "[1,2,3,4]"));
  auto tuple = Compile(
      R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":{"type":"boolean"},"minItems":1})");
  EXPECT_TRUE(Matches(tuple, R"(["a"])"));
  EXPECT_TRUE(Matches(tuple, R"(["a",1,true,false])"));
  EXPECT_FALSE(Matches(tuple, R"(["a",true])"));
  EXPECT_FALSE(Matches(tuple, "[]"));
  auto draft7 = Compile(R"({"type":"array","items":[{"const":1},{"const":2}],"additionalItems":false})");
  EXPECT_TRUE(Matches(draft7, "[1,2]"));
  EXPECT_TRUE(Matches(draft7, "[]"));
  EXPECT_FALSE(Matches(draft7, "[1,2,3]"));
}

TEST(JsonSchema, StringsFormatsAndPatterns) {
  auto lengths = Compile(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_TRUE(Matches(lengths, R"("ab")"));
  EXPECT_TRUE(Matches(lengths, R"("a\"\u00e9")"));  // escapes count one character
  EXPECT_TRUE(Matches(lengths, "\"\xC3\xA9\xC3\xA9\""));
  EXPECT_FALSE(Matches(lengths, R"("a")"));
  EXPECT_FALSE(Matches(lengths, R"("abcd")"));
  EXPECT_FALSE(Matches(lengths, "\"a\nb\""));  // raw control characters are invalid JSON
  auto pattern = Compile(R"({"type":"string","pattern":"^[a-z]+\"?$","maxLength":4})");
  EXPECT_TRUE(Matches(pattern, R"("abc\"")"));
  EXPECT_FALSE(Matches(pattern, R"("abcd\"")"));
  EXPECT_FALSE(Matches(pattern, R"("ab1")"));
  auto date = Compile(R"({"type":"string","format":"date"})");
  EXPECT_TRUE(Matches(date, R"("2024-02-29")"));
  EXPECT_TRUE(Matches(date, R"("2000-02-29")"));
  EXPECT_FALSE(Matches(date, R"("1900-02-29")"));
  EXPECT_FALSE(Matches(date, R"("2023-04-31")"));
  EXPECT_FALSE(Matches(date, R"("0000-01-01")"));
  auto dt = Compile(R"({"type":"string","format":"date-time"})");
  EXPECT_TRUE(Matches(dt, R"("2024-01-31T23:59:59.123Z")"));
  EXPECT_TRUE(Matches(dt, R"("2024-01-31T00:00:00+05:30")"));
  EXPECT_FALSE(Matches(dt, R"("2024-01-31T24:00:00Z")"));
  auto ip = Compile(R"({"type":"string","format":"ipv4"})");
  EXPECT_TRUE(Matches(ip, R"("192.168.0.255")"));
  EXPECT_FALSE(Matches(ip, R"("192.168.0.256")"));
  EXPECT_FALSE(Matches(ip, R"("01.1.1.1")"));
  auto uuid = Compile(R"({"type":"string","format":"uuid"})");
  EXPECT_TRUE(Matches(uuid, R"("123e4567-e89b-12d3-a456-426614174000")"));
}

TEST(JsonSchema, IntegerRangesAreExact) {
  auto g = Compile(R"({"type":"integer","minimum":-15,"exclusiveMaximum":108})");
  for (int v = -40; v <= 140; ++v) {
    EXPECT_EQ(Matches(g, std::to_string(v)), v >= -15 && v < 108) << v;
  }
  EXPECT_FALSE(Matches(g, "007"));
  EXPECT_FALSE(Matches(g, "-0"));
  auto big = Compile(R"({"type":"integer","minimum":9223372036854775800})");
  EXPECT_TRUE(Matches(big, "9223372036854775807"));
  EXPECT_TRUE(Matches(big, "9999999999999999999"));
  EXPECT_FALSE(Matches(big, "9223372036854775799"));
  auto open = Compile(R"({"type":"integer","maximum":-3})");
  EXPECT_TRUE(Matches(open, "-3"));
  EXPECT_TRUE(Matches(open, "-123456"));
  EXPECT_FALSE(Matches(open, "0"));
}

TEST(JsonSchema, NumbersWithIntegerBounds) {
  auto g = Compile(R"({"type":"number","minimum":-1,"exclusiveMaximum":2})");
  for (const char* ok : {"-1", "-1.0", "-0.5", "0", "1.999", "1"}) EXPECT_TRUE(Matches(g, ok)) << ok;
  for (const char* bad : {"-1.5", "2", "2.0", "-1.01", "1e1"}) EXPECT_FALSE(Matches(g, bad)) << bad;
  auto positive = Compile(R"({"type":"number","exclusiveMinimum":0})");
  EXPECT_TRUE(Matches(positive, "0.001"));
  EXPECT_FALSE(Matches(positive, "0"));
  EXPECT_FALSE(Matches(positive, "0.000"));
  EXPECT_FALSE(Matches(positive, "-1"));
  auto any = Compile(R"({"type":"number"})");
  EXPECT_TRUE(Matches(any, "-12.5e+10"));
  EXPECT_FALSE(Matches(any, "1."));
}

TEST(JsonSchema, EnumConstAnyOfAndRefs) {
  auto e = Compile(R"({"enum":["red",1,null,{"k":[true]}]})");
  EXPECT_TRUE(Matches(e, R"("red")"));
  EXPECT_TRUE(Matches(e, R"({"k":[true]})"));
  EXPECT_FALSE(Matches(e, R"("blue")"));
  auto any = Compile(R"({"anyOf":[{"type":"string"},{"type":"integer"}]})");
  EXPECT_TRUE(Matches(any, "3"));
  EXPECT_TRUE(Matches(any, R"("3")"));
  EXPECT_FALSE(Matches(any, "3.5"));
  auto tree = Compile(R"({"$ref":"#/$defs/node","$defs":{"node":{"type":"object","properties":{
      "v":{"type":"integer"},"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}}})");
  EXPECT_TRUE(Matches(tree, R"({"v":1,"children":[{"v":2},{"v":3,"children":[{"v":4,"children":[]}]}]})"));
  EXPECT_FALSE(Matches(tree, R"({"v":1,"children":[{}]})"));
  auto nullable = Compile(R"({"type":["string","null"]})");
  EXPECT_TRUE(Matches(nullable, "null"));
}

TEST(JsonSchema, Errors) {
  EXPECT_THAT(Error(R"({"type":"object",)").message(), HasSubstr("json_schema: invalid JSON"));
  EXPECT_THAT(Error(R"({"type":"array","uniqueItems":true})").message(),
              HasSubstr("unsupported keyword 'uniqueItems' at #"));
  EXPECT_THAT(Error(R"({"properties":{"a":{"not":{}}}})").message(), HasSubstr("'not' at #/properties/a"));
  EXPECT_THAT(Error(R"({"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}}})").message(),
              HasSubstr("no finite derivation"));
  EXPECT_THAT(Error(R"({"type":"object","properties":{"next":{"$ref":"#"}},"required":["next"]})").message(),
              HasSubstr("no finite derivation"));
  EXPECT_THAT(Error(R"({"$ref":"#/$defs/missing"})").message(), HasSubstr("does not resolve"));
  EXPECT_THAT(Error(R"({"$ref":"https://example.com/s.json"})").message(), HasSubstr("not local"));
  EXPECT_THAT(Error(R"({"type":"string","format":"hostname"})").message(), HasSubstr("format \"hostname\""));
  EXPECT_THAT(Error(R"({"type":"number","minimum":0.5})").message(), HasSubstr("number bounds must be integers"));
  EXPECT_THAT(Error(R"J({"type":"string","pattern":"(?=a)"})J").message(), HasSubstr("lookahead"));
  EXPECT_THAT(Error(R"({"type":"integer","minimum":5,"maximum":4})").message(), HasSubstr("no finite derivation"));
  EXPECT_THAT(Error(std::string(100, '[') + std::string(100, ']')).message(), HasSubstr("nested deeper"));
  EXPECT_THAT(Error(std::string(2 << 20, ' ') + "{}").message(), HasSubstr("the limit is"));
  EXPECT_THAT(Error("false").message(), HasSubstr("no finite derivation"));
}

TEST(JsonSchema, JsonObjectMode) {
  ConstraintCompiler compiler(testing::ByteVocab());
  auto g = compiler.Compile({.kind = Constraint::Kind::kJsonObject});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(Matches(*g, R"({"a":[1,2,{"b":null}],"c":"\u0041"})"));
  EXPECT_FALSE(Matches(*g, "[1]"));
  EXPECT_FALSE(Matches(*g, R"("s")"));
  // The cache returns the same compiled grammar.
  auto again = compiler.Compile({.kind = Constraint::Kind::kJsonObject});
  EXPECT_EQ(again->get(), g->get());
  EXPECT_EQ(compiler.stats().hits, 1);
}

}  // namespace
}  // namespace moeserve::structured

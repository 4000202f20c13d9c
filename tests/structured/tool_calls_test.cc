// ToolCallsGrammar: outputs made only of tool calls in a model's markup, each call's arguments
// matching its function's schema (compiled through ConstraintCompiler, kind kToolCalls, over a
// byte vocabulary): the markup and the layout are exact, arguments that break a schema or are not
// an object are refused, max_calls bounds the calls, and bad specs name the part at fault.

#include "server/structured/tool_calls_grammar.h"

#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/structured/constraint_compiler.h"
#include "tests/structured/structured_test_util.h"

namespace moeserve::structured {
namespace {

using testing::ByteVocab;
using testing::Matches;
using Json = nlohmann::ordered_json;

const Json kWeather = {
    {"type", "object"},
    {"properties", {{"city", {{"type", "string"}}}, {"days", {{"type", "integer"}, {"minimum", 1}}}}},
    {"required", {"city"}}};

Json HermesCall(const std::string& name, const Json& arguments) {
  return {{"before", "<tool_call>\n{\"name\": \"" + name + "\", \"arguments\": "},
          {"arguments", arguments},
          {"after", "}\n</tool_call>"}};
}

std::shared_ptr<const CompiledGrammar> Compile(const Json& spec) {
  ConstraintCompiler compiler(ByteVocab());
  auto grammar = compiler.Compile({.kind = Constraint::Kind::kToolCalls, .value = spec.dump()});
  EXPECT_TRUE(grammar.ok()) << grammar.status();
  return grammar.ok() ? *grammar : nullptr;
}

TEST(ToolCallsGrammar, HermesCallsWithSchemaArguments) {
  const Json spec = {{"separator", "\n"},
                     {"calls", {HermesCall("get_weather", kWeather), HermesCall("anything", nullptr)}}};
  auto g = Compile(spec);
  ASSERT_NE(g, nullptr);
  const std::string paris =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>";
  EXPECT_TRUE(Matches(g, paris));
  EXPECT_TRUE(Matches(
      g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Oslo\",\"days\":3}}\n</tool_call>"));
  EXPECT_TRUE(Matches(g, paris + "\n" + paris));
  EXPECT_TRUE(Matches(g, "<tool_call>\n{\"name\": \"anything\", \"arguments\": {\"x\":[1,{}]}}\n</tool_call>"));
  // Schema violations: missing required, wrong type, below minimum, unknown property.
  EXPECT_FALSE(Matches(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(Matches(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":1}}\n</tool_call>"));
  EXPECT_FALSE(
      Matches(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"a\",\"days\":0}}\n</tool_call>"));
  EXPECT_FALSE(
      Matches(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"a\",\"x\":1}}\n</tool_call>"));
  // Any JSON object only: not an array; no other function; no text around the calls; at least one.
  EXPECT_FALSE(Matches(g, "<tool_call>\n{\"name\": \"anything\", \"arguments\": [1]}\n</tool_call>"));
  EXPECT_FALSE(Matches(g, "<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(Matches(g, "Sure! " + paris));
  EXPECT_FALSE(Matches(g, paris + " done"));
  EXPECT_FALSE(Matches(g, ""));
}

TEST(ToolCallsGrammar, MaxCallsAndBlockMarkup) {
  const std::string sep = "<｜tool▁sep｜>";
  const Json call = {{"before", "<｜tool▁call▁begin｜>function" + sep + "get_weather\n```json\n"},
                     {"arguments", kWeather},
                     {"after", "\n```<｜tool▁call▁end｜>"}};
  const std::string one =
      "<｜tool▁call▁begin｜>function" + sep + "get_weather\n```json\n{\"city\":\"Paris\"}\n```<｜tool▁call▁end｜>";
  auto unbounded = Compile(
      {{"begin", "<｜tool▁calls▁begin｜>"}, {"end", "<｜tool▁calls▁end｜>"}, {"separator", "\n"}, {"calls", {call}}});
  auto single = Compile({{"begin", "<｜tool▁calls▁begin｜>"},
                         {"end", "<｜tool▁calls▁end｜>"},
                         {"separator", "\n"},
                         {"max_calls", 1},
                         {"calls", {call}}});
  ASSERT_NE(unbounded, nullptr);
  ASSERT_NE(single, nullptr);
  const std::string block1 = "<｜tool▁calls▁begin｜>" + one + "<｜tool▁calls▁end｜>";
  const std::string block3 = "<｜tool▁calls▁begin｜>" + one + "\n" + one + "\n" + one + "<｜tool▁calls▁end｜>";
  EXPECT_TRUE(Matches(unbounded, block1));
  EXPECT_TRUE(Matches(unbounded, block3));
  EXPECT_TRUE(Matches(single, block1));
  EXPECT_FALSE(Matches(single, block3));
  EXPECT_FALSE(Matches(unbounded, one));  // the block markup is required
}

TEST(ToolCallsGrammar, BadSpecsNameThePart) {
  auto error = [](const std::string& spec) {
    absl::StatusOr<Grammar> g = ToolCallsGrammar(spec);
    EXPECT_FALSE(g.ok()) << spec;
    return g.ok() ? std::string() : std::string(g.status().message());
  };
  EXPECT_NE(error("{").find("tool_calls: invalid JSON"), std::string::npos);
  EXPECT_NE(error("{\"calls\": []}").find("calls must be a non-empty array"), std::string::npos);
  EXPECT_NE(error("{\"calls\": [{}], \"max_calls\": -1}").find("max_calls"), std::string::npos);
  EXPECT_NE(error("{\"calls\": [{}], \"extra\": 1}").find("unknown field 'extra'"), std::string::npos);
  Json spec = {{"calls", {HermesCall("a", nullptr), HermesCall("b", {{"type", "array"}, {"uniqueItems", true}})}}};
  const std::string message = error(spec.dump());
  EXPECT_EQ(message.rfind("tool_calls: calls[1].arguments: unsupported keyword 'uniqueItems'", 0), 0u) << message;
}

TEST(ToolCallsGrammar, EmbedGrammarRenumbersReferences) {
  Grammar into;
  into.AddRule("root");
  absl::StatusOr<Grammar> schema = JsonSchemaToGrammar(R"({"type": "array", "items": {"$ref": "#"}})");
  ASSERT_TRUE(schema.ok()) << schema.status();
  const size_t before = into.rules.size();
  const int32_t root = EmbedGrammar(*schema, "s-", &into);
  EXPECT_EQ(into.rules.size(), before + schema->rules.size());
  EXPECT_EQ(root, static_cast<int32_t>(before) + schema->root);
  into.rules[0].body = Ref(root);
  auto g = testing::CompileBytes(into);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(Matches(*g, "[[],[[]]]"));
  EXPECT_FALSE(Matches(*g, "[1]"));
}

}  // namespace
}  // namespace moeserve::structured

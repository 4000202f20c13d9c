// ToolCallParser: Hermes/Qwen <tool_call> and DeepSeek-V3/R1 tool tokens, parallel calls, malformed
// calls returned as content; every case also holds when cut at any byte.
#include "server/serving/parsers/tool_call_parser.h"

#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/serving/parsers/json_text.h"
#include "tests/serving/parsers/parser_test_util.h"

namespace moeserve::parsers {
namespace {

using testing::ExpectSplitInvariant;

constexpr uint64_t kSeed = 42;

struct Call {
  std::string name;
  std::string arguments;
};

struct Case {
  const char* name;
  ToolCallFormat format;
  std::string text;
  std::string content;
  std::vector<Call> calls;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class ToolCallCaseTest : public ::testing::TestWithParam<Case> {};

TEST_P(ToolCallCaseTest, WholeAndEverySplit) {
  const Case& c = GetParam();
  const ChatParserOptions options{ReasoningFormat::kNone, c.format, kSeed};
  const ParsedChatOutput whole = ParseChatOutput(options, "", c.text);
  EXPECT_EQ(whole.content, c.content);
  ASSERT_EQ(whole.tool_calls.size(), c.calls.size());
  for (size_t i = 0; i < c.calls.size(); ++i) {
    EXPECT_EQ(whole.tool_calls[i].index, static_cast<int>(i));
    EXPECT_EQ(whole.tool_calls[i].id, ToolCallId(kSeed, static_cast<int>(i)));
    EXPECT_EQ(whole.tool_calls[i].name, c.calls[i].name);
    EXPECT_EQ(whole.tool_calls[i].arguments, c.calls[i].arguments);
  }
  ExpectSplitInvariant(options, "", c.text);
}

const std::string kDsCall1 =
    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```"
    "<｜tool▁call▁end｜>";
const std::string kDsCall2 =
    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{\"query\": \"moe ``` fence\", "
    "\"max_results\": 3}\n```<｜tool▁call▁end｜>";

const Case kCases[] = {
    {"HermesSingle",
     ToolCallFormat::kHermes,
     "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
     "\"Paris\"}}\n</tool_call>",
     "Let me check.",
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"HermesParallel",
     ToolCallFormat::kHermes,
     "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": [1, {\"y\": \"}\"}]}}\n</tool_call>\n"
     "<tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>",
     "",
     {{"a", "{\"x\": [1, {\"y\": \"}\"}]}"}, {"b", "{}"}}},
    {"HermesProseAfterCalls",
     ToolCallFormat::kHermes,
     "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n\nDone.",
     "Done.",
     {{"a", "{}"}}},
    {"HermesNoCalls",
     ToolCallFormat::kHermes,
     "Just text with <b>tags</b> and a <tool",
     "Just text with <b>tags</b> and a <tool",
     {}},
    {"HermesInvalidJsonIsContent",
     ToolCallFormat::kHermes,
     "Calling:\n<tool_call>\n{'name': 'a', 'arguments': {}}\n</tool_call>",
     "Calling:\n<tool_call>\n{'name': 'a', 'arguments': {}}\n</tool_call>",
     {}},
    {"HermesOneBadOneGood",
     ToolCallFormat::kHermes,
     "<tool_call>{\"name\": \"a\", \"arguments\": {\"x\": }}</tool_call>\n"
     "<tool_call>{\"name\": \"b\", \"arguments\": {\"y\": 1}}</tool_call>",
     "<tool_call>{\"name\": \"a\", \"arguments\": {\"x\": }}</tool_call>",
     {{"b", "{\"y\": 1}"}}},
    {"HermesTruncatedIsContent",
     ToolCallFormat::kHermes,
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par",
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par",
     {}},
    {"HermesMissingOnlyClosingTag",
     ToolCallFormat::kHermes,
     "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"k\": true}}\n",
     "",
     {{"a", "{\"k\": true}"}}},
    {"HermesArgumentsAsString",
     ToolCallFormat::kHermes,
     "<tool_call>{\"name\": \"a\", \"arguments\": \"{\\\"k\\\": \\\"v\\\"}\"}</tool_call>",
     "",
     {{"a", "{\"k\": \"v\"}"}}},
    {"HermesParametersAndNoArguments",
     ToolCallFormat::kHermes,
     "<tool_call>{\"name\": \"a\", \"parameters\": {\"p\": 1}}</tool_call>"
     "<tool_call>{\"name\": \"b\"}</tool_call>",
     "",
     {{"a", "{\"p\": 1}"}, {"b", "{}"}}},
    {"HermesNonObjectArgumentsIsContent",
     ToolCallFormat::kHermes,
     "<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>",
     "<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>",
     {}},
    {"HermesNoNameIsContent",
     ToolCallFormat::kHermes,
     "<tool_call>{\"arguments\": {}}</tool_call>",
     "<tool_call>{\"arguments\": {}}</tool_call>",
     {}},
    {"HermesFreeTextIsContent",
     ToolCallFormat::kHermes,
     "<tool_call>I will call get_weather</tool_call>",
     "<tool_call>I will call get_weather</tool_call>",
     {}},
    {"HermesUnclosedThenNext",
     ToolCallFormat::kHermes,
     "<tool_call>{\"name\": \"a\", \"arguments\": {}}\n<tool_call>{\"name\": \"b\", "
     "\"arguments\": {}}</tool_call>",
     "",
     {{"a", "{}"}, {"b", "{}"}}},
    {"HermesUnicodeArguments",
     ToolCallFormat::kHermes,
     "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"東京\", \"note\": "
     "\"\\u00e9 ☔\"}}</tool_call>",
     "",
     {{"get_weather", "{\"city\": \"東京\", \"note\": \"\\u00e9 ☔\"}"}}},
    {"DeepSeekV3Parallel",
     ToolCallFormat::kDeepSeekV3,
     "I'll look both up.<｜tool▁calls▁begin｜>" + kDsCall1 + "\n" + kDsCall2 + "<｜tool▁calls▁end｜>",
     "I'll look both up.",
     {{"get_weather", "{\"city\": \"Paris\"}"}, {"search", "{\"query\": \"moe ``` fence\", \"max_results\": 3}"}}},
    {"DeepSeekV3BlockNeverClosed",
     ToolCallFormat::kDeepSeekV3,
     "<｜tool▁calls▁begin｜>" + kDsCall1,
     "",
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"DeepSeekV31",
     ToolCallFormat::kDeepSeekV3,
     "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Rome\"}"
     "<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
     "",
     {{"get_weather", "{\"city\": \"Rome\"}"}}},
    {"DeepSeekInvalidJsonIsContent",
     ToolCallFormat::kDeepSeekV3,
     "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{city: "
     "Paris}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{city: "
     "Paris}\n```<｜tool▁call▁end｜>",
     {}},
    {"DeepSeekTruncatedInsideCall",
     ToolCallFormat::kDeepSeekV3,
     "ok<｜tool▁calls▁begin｜>" + kDsCall1 +
         "\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{\"query\": ",
     "ok<｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{\"query\": ",
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"DeepSeekUnfencedOrWrongType",
     ToolCallFormat::kDeepSeekV3,
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>a\n{\"k\": 1}<｜tool▁call▁end｜>"
     "<｜tool▁call▁begin｜>widget<｜tool▁sep｜>b\n```json\n{}\n```<｜tool▁call▁end｜>",
     "<｜tool▁call▁begin｜>widget<｜tool▁sep｜>b\n```json\n{}\n```<｜tool▁call▁end｜>",
     {{"a", "{\"k\": 1}"}}},
    {"DeepSeekProseInsideBlock",
     ToolCallFormat::kDeepSeekV3,
     "<｜tool▁calls▁begin｜>" + kDsCall1 + "\nOops, prose.",
     "Oops, prose.",
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"DeepSeekHermesMarkupIsContent",
     ToolCallFormat::kDeepSeekV3,
     "<tool_call>{\"name\": \"a\"}</tool_call>",
     "<tool_call>{\"name\": \"a\"}</tool_call>",
     {}},
    {"NoneKeepsMarkup",
     ToolCallFormat::kNone,
     "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>",
     "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>",
     {}},
};

INSTANTIATE_TEST_SUITE_P(Cases, ToolCallCaseTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(ToolCallParserTest, ContentStreamsAndCallsComeWhole) {
  ToolCallParser parser(ToolCallFormat::kHermes, kSeed);
  EXPECT_EQ(parser.Feed("Checking").content, "Checking");
  EXPECT_EQ(parser.Feed(" now.\n").content, " now.");  // the newline waits: markup may follow
  EXPECT_TRUE(parser.Feed("<tool_").empty());
  EXPECT_TRUE(parser.Feed("call>\n{\"name\": \"f\", \"arguments\": {\"a\":").empty());
  EXPECT_TRUE(parser.Feed(" 1}}\n</tool_call").empty());
  ToolCallDelta closed = parser.Feed(">");
  EXPECT_EQ(closed.content, "");
  ASSERT_EQ(closed.calls.size(), 1u);
  EXPECT_EQ(closed.calls[0].name, "f");
  EXPECT_EQ(closed.calls[0].arguments, "{\"a\": 1}");
  EXPECT_EQ(parser.num_calls(), 1);
  EXPECT_TRUE(parser.Finish().empty());
}

TEST(ToolCallParserTest, DeeplyNestedArgumentsDoNotCrash) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string good = "<tool_call>{\"name\": \"f\", \"arguments\": {\"d\": " + deep + "}}</tool_call>";
  const ChatParserOptions options{ReasoningFormat::kNone, ToolCallFormat::kHermes, kSeed};
  ParsedChatOutput out = ParseChatOutput(options, "", good);
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].arguments, "{\"d\": " + deep + "}");
  const std::string bad =
      "<tool_call>{\"name\": \"f\", \"arguments\": {\"d\": " + std::string(100000, '[') + "}}</tool_call>";
  out = ParseChatOutput(options, "", bad);
  EXPECT_TRUE(out.tool_calls.empty());
  EXPECT_EQ(out.content, bad);
}

TEST(ToolCallParserTest, IdsAreOpenAiShapedAndDistinct) {
  const std::string a = ToolCallId(1, 0);
  EXPECT_EQ(a.size(), 5u + 24u);
  EXPECT_EQ(a.substr(0, 5), "call_");
  for (char c : a.substr(5)) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << a;
  EXPECT_EQ(a, ToolCallId(1, 0));
  EXPECT_NE(a, ToolCallId(1, 1));
  EXPECT_NE(a, ToolCallId(2, 0));
}

TEST(JsonTextTest, ObjectMembersKeepTheModelsSpelling) {
  auto members = JsonObjectMembers(" {\"a\" : 1.50e3 , \"b\\u0022\":{\"c\": [true, null, \"}\"]},\"d\":\"x\"} ");
  ASSERT_TRUE(members.has_value());
  ASSERT_EQ(members->size(), 3u);
  EXPECT_EQ((*members)[0].key, "a");
  EXPECT_EQ((*members)[0].value, "1.50e3");
  EXPECT_EQ((*members)[1].key, "b\"");
  EXPECT_EQ((*members)[1].value, "{\"c\": [true, null, \"}\"]}");
  EXPECT_EQ((*members)[2].value, "\"x\"");
  EXPECT_FALSE(JsonObjectMembers("[1]").has_value());
  EXPECT_FALSE(JsonObjectMembers("{\"a\": 1,}").has_value());
  EXPECT_FALSE(JsonObjectMembers("{\"a\": 1} {}").has_value());
  EXPECT_FALSE(JsonObjectMembers("{\"a\": \"\xff\"}").has_value());  // invalid UTF-8
  EXPECT_TRUE(JsonObjectMembers("{}").has_value());
}

}  // namespace
}  // namespace moeserve::parsers

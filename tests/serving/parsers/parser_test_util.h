#ifndef MOESERVE_TESTS_SERVING_PARSERS_PARSER_TEST_UTIL_H_
#define MOESERVE_TESTS_SERVING_PARSERS_PARSER_TEST_UTIL_H_

// Feeds a completion's text to a ChatOutputParser in pieces and gathers the deltas, so tests can
// require that every way of splitting the text gives the whole-text result.

#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "server/serving/parsers/chat_output_parser.h"

namespace moeserve::parsers::testing {

// Appends a streamed delta to what was gathered so far.
inline void Gather(ChatDelta delta, ParsedChatOutput* out) {
  out->reasoning += delta.reasoning;
  out->content += delta.content;
  for (ToolCall& call : delta.tool_calls) out->tool_calls.push_back(std::move(call));
}

// Feeds text[0, cuts[0]), text[cuts[0], cuts[1]), ..., text[cuts.back(), end) (cuts ascending),
// then Finish(), and gathers the deltas.
inline ParsedChatOutput ParseInPieces(const ChatParserOptions& options, std::string_view prompt, std::string_view text,
                                      const std::vector<size_t>& cuts) {
  ChatOutputParser parser(options, prompt);
  ParsedChatOutput result;
  size_t begin = 0;
  for (size_t cut : cuts) {
    Gather(parser.Feed(text.substr(begin, cut - begin)), &result);
    begin = cut;
  }
  Gather(parser.Feed(text.substr(begin)), &result);
  Gather(parser.Finish(), &result);
  result.has_reasoning = parser.saw_reasoning();
  return result;
}

inline void ExpectSameOutput(const ParsedChatOutput& expected, const ParsedChatOutput& actual, const std::string& how) {
  EXPECT_EQ(expected.reasoning, actual.reasoning) << how;
  EXPECT_EQ(expected.content, actual.content) << how;
  EXPECT_EQ(expected.has_reasoning, actual.has_reasoning) << how;
  ASSERT_EQ(expected.tool_calls.size(), actual.tool_calls.size()) << how;
  for (size_t i = 0; i < expected.tool_calls.size(); ++i) {
    EXPECT_EQ(expected.tool_calls[i].index, actual.tool_calls[i].index) << how;
    EXPECT_EQ(expected.tool_calls[i].id, actual.tool_calls[i].id) << how;
    EXPECT_EQ(expected.tool_calls[i].name, actual.tool_calls[i].name) << how;
    EXPECT_EQ(expected.tool_calls[i].arguments, actual.tool_calls[i].arguments) << how;
  }
}

// The text cut in two at every byte, and fed one byte at a time: each must equal the whole-text
// result.
inline void ExpectSplitInvariant(const ChatParserOptions& options, std::string_view prompt, std::string_view text) {
  const ParsedChatOutput whole = ParseChatOutput(options, prompt, text);
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    ExpectSameOutput(whole, ParseInPieces(options, prompt, text, {cut}), "split at byte " + std::to_string(cut));
    if (::testing::Test::HasFailure()) return;
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < text.size(); ++i) every_byte.push_back(i);
  ExpectSameOutput(whole, ParseInPieces(options, prompt, text, every_byte), "one byte at a time");
}

}  // namespace moeserve::parsers::testing

#endif  // MOESERVE_TESTS_SERVING_PARSERS_PARSER_TEST_UTIL_H_

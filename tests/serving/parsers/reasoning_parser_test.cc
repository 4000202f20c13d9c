// ReasoningParser: the <think> split for DeepSeek-R1 (block opened by the prompt) and Qwen3 (opened
// by the model), whole and streamed; every case also holds when cut at any byte.
#include "server/serving/parsers/reasoning_parser.h"

#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "tests/serving/parsers/parser_test_util.h"

namespace moeserve::parsers {
namespace {

using testing::ExpectSplitInvariant;

constexpr std::string_view kR1Prompt = "<｜begin▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜><think>\n";
constexpr std::string_view kQwenPrompt = "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n";
constexpr std::string_view kQwenNoThinkPrompt =
    "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";

struct Case {
  const char* name;
  ReasoningFormat format;
  std::string_view prompt;
  std::string text;
  std::string reasoning;
  std::string content;
  bool has_reasoning;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class ReasoningCaseTest : public ::testing::TestWithParam<Case> {};

TEST_P(ReasoningCaseTest, WholeAndEverySplit) {
  const Case& c = GetParam();
  const ChatParserOptions options{c.format, ToolCallFormat::kNone, 0};
  const ParsedChatOutput whole = ParseChatOutput(options, c.prompt, c.text);
  EXPECT_EQ(whole.reasoning, c.reasoning);
  EXPECT_EQ(whole.content, c.content);
  EXPECT_EQ(whole.has_reasoning, c.has_reasoning);
  EXPECT_TRUE(whole.tool_calls.empty());
  ExpectSplitInvariant(options, c.prompt, c.text);
}

const Case kCases[] = {
    {"R1Basic", ReasoningFormat::kDeepSeekR1, kR1Prompt, "2 plus 2 is 4.\n</think>\n\nThe answer is **4**.",
     "2 plus 2 is 4.", "The answer is **4**.", true},
    {"R1RepeatsOpeningTag", ReasoningFormat::kDeepSeekR1, kR1Prompt, "<think>\nHmm.\n</think>\n\nFour.", "Hmm.",
     "Four.", true},
    {"R1NoClosingTag", ReasoningFormat::kDeepSeekR1, kR1Prompt, "Still thinking about 2 + 2 < 5 and </thi",
     "Still thinking about 2 + 2 < 5 and </thi", "", true},
    {"R1TrailingSpaceKeptWhenTruncated", ReasoningFormat::kDeepSeekR1, kR1Prompt, "Still thinking\n\n",
     "Still thinking\n\n", "", true},
    {"R1EmptyReasoning", ReasoningFormat::kDeepSeekR1, kR1Prompt, "\n\n</think>\n\nFour.", "", "Four.", true},
    {"R1ContentKeepsLaterTags", ReasoningFormat::kDeepSeekR1, kR1Prompt, "a</think>b <think>c</think> d", "a",
     "b <think>c</think> d", true},
    {"R1EmptyOutput", ReasoningFormat::kDeepSeekR1, kR1Prompt, "", "", "", true},
    {"R1ModelOpensWithoutTemplate", ReasoningFormat::kDeepSeekR1, "<｜User｜>hi<｜Assistant｜>",
     "<think>\nr\n</think>\nc", "r", "c", true},
    {"R1NoBlockAtAll", ReasoningFormat::kDeepSeekR1, "<｜User｜>hi<｜Assistant｜>", "Hello!", "", "Hello!", false},
    {"Qwen3ModelOpens", ReasoningFormat::kQwen3, kQwenPrompt, "<think>\nLet me add: 2+2=4.\n</think>\n\nIt is 4.",
     "Let me add: 2+2=4.", "It is 4.", true},
    {"Qwen3SpaceBeforeOpeningTag", ReasoningFormat::kQwen3, kQwenPrompt, "\n<think>r</think>c", "r", "c", true},
    {"Qwen3NoThinking", ReasoningFormat::kQwen3, kQwenPrompt, "  It is 4.", "", "  It is 4.", false},
    {"Qwen3LookalikeTag", ReasoningFormat::kQwen3, kQwenPrompt, "<thinking>x</thinking>", "", "<thinking>x</thinking>",
     false},
    {"Qwen3PartialTagAtEnd", ReasoningFormat::kQwen3, kQwenPrompt, "<thi", "", "<thi", false},
    {"Qwen3OnlySpace", ReasoningFormat::kQwen3, kQwenPrompt, " \n", "", " \n", false},
    {"Qwen3TemplateClosedBlock", ReasoningFormat::kQwen3, kQwenNoThinkPrompt, "It is 4. <think>", "",
     "It is 4. <think>", false},
    {"Qwen3TruncatedReasoning", ReasoningFormat::kQwen3, kQwenPrompt, "<think>\nstep 1, step", "step 1, step", "",
     true},
    {"Qwen3Unicode", ReasoningFormat::kQwen3, kQwenPrompt, "<think>\n让我想想 🤔\n</think>\n\n答案是 4。",
     "让我想想 🤔", "答案是 4。", true},
    {"NoneKeepsTags", ReasoningFormat::kNone, kR1Prompt, "a</think>b", "", "a</think>b", false},
};

INSTANTIATE_TEST_SUITE_P(Cases, ReasoningCaseTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(ReasoningParserTest, StreamsWithoutWaitingForTheClosingTag) {
  ReasoningParser parser(ReasoningFormat::kDeepSeekR1, kR1Prompt);
  EXPECT_EQ(parser.Feed("First").reasoning, "First");
  EXPECT_EQ(parser.Feed(", second").reasoning, ", second");
  // A possible partial </think> and the space before it wait for the next delta.
  EXPECT_EQ(parser.Feed(" </").reasoning, "");
  EXPECT_EQ(parser.Feed("b>").reasoning, " </b>");
  ReasoningDelta end = parser.Feed("\n</think>\n\nDone");
  EXPECT_EQ(end.reasoning, "");
  EXPECT_EQ(end.content, "Done");
  EXPECT_EQ(parser.Finish().content, "");
}

TEST(ReasoningParserTest, Qwen3DecidesAsSoonAsTheFirstCharacterRulesOutTheTag) {
  ReasoningParser parser(ReasoningFormat::kQwen3, kQwenPrompt);
  EXPECT_TRUE(parser.Feed("<").empty());  // could still become <think>
  EXPECT_EQ(parser.Feed("b>bold").content, "<b>bold");
  EXPECT_FALSE(parser.saw_reasoning());
}

TEST(ReasoningParserTest, PromptOpensReasoning) {
  EXPECT_TRUE(PromptOpensReasoning(kR1Prompt));
  EXPECT_TRUE(PromptOpensReasoning("x<think>"));
  EXPECT_FALSE(PromptOpensReasoning(kQwenPrompt));
  EXPECT_FALSE(PromptOpensReasoning(kQwenNoThinkPrompt));
  EXPECT_FALSE(PromptOpensReasoning(""));
  // A <think> in the conversation, not at the end of the prompt, does not open the output.
  EXPECT_FALSE(PromptOpensReasoning("<|im_start|>user\n<think><|im_end|>\n<|im_start|>assistant\n"));
}

}  // namespace
}  // namespace moeserve::parsers

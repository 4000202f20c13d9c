// Runs the real `moeserve` binary: convert llama2.c's stories260K into a Hugging Face directory,
// then `generate` greedily from BOS must print the reference story from ../shared/data/README.md;
// tokenize round-trips; bad input exits non-zero with a message naming the problem.

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model/config.h"
#include "tests/cli/run_command.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kReferenceStory[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One "
    "day, she saw a big, red ball. She wanted to play with it, but it was too high.";

using Result = testing::CommandResult;

Result RunMoeserve(const std::string& args) {
  return testing::RunCommand(std::string(MOESERVE_BIN) + " " + args + " 2>&1");
}

class MoeserveCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto src = moeserve::testing::TestDataDir() / "models" / "stories260K";
    if (!std::filesystem::exists(src / "stories260K.bin")) return;
    dir_ = new std::string(moeserve::testing::MakeTempDir("moeserve-cli").string());
    convert_ = new Result(RunMoeserve("convert --llama2c " + (src / "stories260K.bin").string() + " --tokenizer " +
                                      (src / "tok512.bin").string() + " --out " + *dir_));
  }
  void SetUp() override {
    MOESERVE_REQUIRE_TEST_DATA("models/stories260K/stories260K.bin");
    ASSERT_EQ(convert_->exit_code, 0) << convert_->output;
  }
  static std::string* dir_;
  static Result* convert_;
};
std::string* MoeserveCliTest::dir_ = nullptr;
Result* MoeserveCliTest::convert_ = nullptr;

TEST_F(MoeserveCliTest, ConvertWritesALlamaDirectory) {
  auto config = LoadModelConfig(*dir_);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->hidden_size, 64);
  EXPECT_EQ(config->num_hidden_layers, 5);
  EXPECT_EQ(config->num_key_value_heads, 4);
  EXPECT_EQ(config->vocab_size, 512);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(*dir_) / "tokenizer.json"));
}

TEST_F(MoeserveCliTest, GenerateFromBosPrintsTheReferenceStory) {
  const Result r = RunMoeserve("generate --model " + *dir_ + " --max-tokens 100 --temperature 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, StartsWith(kReferenceStory));
}

TEST_F(MoeserveCliTest, GenerateContinuesAPromptWithoutRepeatingIt) {
  const Result r = RunMoeserve("generate --model " + *dir_ + " --prompt 'Once upon a time' --max-tokens 10");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, StartsWith(", there was a little girl named Lily"));
}

TEST_F(MoeserveCliTest, StopStringEndsTheCompletionBeforeIt) {
  const Result r = RunMoeserve("generate --model " + *dir_ + " --max-tokens 100 --stop 'Lily'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "Once upon a time, there was a little girl named \n");
}

TEST_F(MoeserveCliTest, TokenizePrintsJsonArraysAndRoundTrips) {
  const Result plain = RunMoeserve("tokenize --model " + *dir_ + " --text 'Once upon a time'");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const Result special = RunMoeserve("tokenize --model " + *dir_ + " --add-special-tokens --text 'Once upon a time'");
  ASSERT_EQ(special.exit_code, 0) << special.output;
  ASSERT_THAT(plain.output, StartsWith("["));
  EXPECT_EQ(special.output, "[1, " + plain.output.substr(1));  // BOS from add_bos_token
  const Result text =
      RunMoeserve("tokenize --model " + *dir_ + " --decode '" + plain.output.substr(0, plain.output.size() - 1) + "'");
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_EQ(text.output, "Once upon a time\n");
}

TEST_F(MoeserveCliTest, TokenizeJsonlPrintsOneArrayPerLineInOrder) {
  const auto file = moeserve::testing::MakeTempDir("jsonl") / "in.jsonl";
  std::ofstream(file) << "{\"text\": \"Once upon a time\"}\n{\"text\": \"Lily\"}\n{\"text\": \"\"}\n";
  const Result r = RunMoeserve("tokenize --model " + *dir_ + " --jsonl " + file.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Result one = RunMoeserve("tokenize --model " + *dir_ + " --text 'Once upon a time'");
  const Result two = RunMoeserve("tokenize --model " + *dir_ + " --text Lily");
  EXPECT_EQ(r.output, one.output + two.output + "[]\n");
  std::ofstream(file) << "not json\n";
  const Result bad = RunMoeserve("tokenize --model " + *dir_ + " --jsonl " + file.string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.output, HasSubstr("in.jsonl:1"));
}

TEST_F(MoeserveCliTest, TokenizeChatRendersTheTemplate) {
  MOESERVE_REQUIRE_TEST_DATA("tokenizers/deepseek_v3/tokenizer_config.json");
  const auto dir = moeserve::testing::TestDataDir() / "tokenizers" / "deepseek_v3";
  const auto file = moeserve::testing::MakeTempDir("chat") / "chat.json";
  std::ofstream(file) << R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])";
  const Result r = RunMoeserve("tokenize --model " + dir.string() + " --chat " + file.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>\n");
}

TEST_F(MoeserveCliTest, BadInputFailsWithAMessage) {
  Result r = RunMoeserve("generate --model /nonexistent/model --prompt hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("no model at /nonexistent/model"));
  r = RunMoeserve("generate --model " + *dir_ + " --top-p 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("top_p"));
  r = RunMoeserve("convert --llama2c /nonexistent.bin --tokenizer /nonexistent.bin --out /tmp/x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("/nonexistent.bin"));
}

}  // namespace
}  // namespace moeserve

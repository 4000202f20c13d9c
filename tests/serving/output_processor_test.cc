// SampleOutputProcessor on the committed default model's tokenizer: text deltas equal the decoded
// ids, stop strings cut the text and drop the tokens after the one that completed them (several
// tokens per engine delta, as speculative decoding produces), logprobs get their token text.

#include "server/serving/output_processor.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve::serving {
namespace {

class OutputProcessorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto tokenizer = Tokenizer::FromDirectory(MOESERVE_SOURCE_DIR "/models/default");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = tokenizer->release();
  }

  std::vector<int32_t> Ids(const std::string& text) const {
    auto ids = tokenizer_->Encode(text, /*add_special_tokens=*/false);
    EXPECT_TRUE(ids.ok());
    return *ids;
  }

  static RequestOutput Delta(std::vector<int32_t> ids, bool finished = false,
                             FinishReason reason = FinishReason::kLength) {
    RequestOutput d;
    d.token_ids = std::move(ids);
    d.finished = finished;
    if (finished) d.finish_reason = reason;
    return d;
  }

  static const Tokenizer* tokenizer_;
  const std::vector<int32_t> prompt_ = {1};  // BOS
};
const Tokenizer* OutputProcessorTest::tokenizer_ = nullptr;

TEST_F(OutputProcessorTest, TextDeltasConcatenateToTheDecodedIds) {
  const std::vector<int32_t> ids = Ids("Once upon a time, there was a dog.");
  SampleOutputProcessor p(tokenizer_, prompt_, SamplingParams{}, {});
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    const Output out = p.Process(Delta({ids[i]}, i + 1 == ids.size()));
    EXPECT_EQ(out.token_ids, std::vector<int32_t>{ids[i]});
    text += out.text;
  }
  EXPECT_TRUE(p.finished());
  EXPECT_FALSE(p.stopped_early());
  EXPECT_EQ(p.num_tokens(), static_cast<int32_t>(ids.size()));
  std::vector<int32_t> all = prompt_;
  all.insert(all.end(), ids.begin(), ids.end());
  EXPECT_EQ(*tokenizer_->Decode(prompt_, true) + text, *tokenizer_->Decode(all, true));
}

TEST_F(OutputProcessorTest, StopStringDropsTheTokensAfterIt) {
  const std::vector<int32_t> ids = Ids("Once upon a time, there was a dog. The end.");
  SamplingParams params;
  params.stop = {"was a"};
  SampleOutputProcessor p(tokenizer_, prompt_, params, {});
  // The whole output arrives in one engine delta (e.g. merged, or several tokens per step).
  const Output out = p.Process(Delta(ids));
  EXPECT_TRUE(out.finished);
  EXPECT_TRUE(p.finished());
  EXPECT_TRUE(p.stopped_early());  // the engine has not finished: the caller stops it
  EXPECT_EQ(out.finish_reason, FinishReason::kStop);
  EXPECT_EQ(out.stop_string, "was a");
  EXPECT_EQ(out.text, "Once upon a time, there ");
  // Tokens up to the one that completed the stop string; none after.
  ASSERT_LT(out.token_ids.size(), ids.size());
  EXPECT_EQ(out.token_ids, std::vector<int32_t>(ids.begin(), ids.begin() + out.token_ids.size()));
  auto upto = tokenizer_->Decode(out.token_ids, true);
  ASSERT_TRUE(upto.ok());
  EXPECT_THAT(*upto, ::testing::EndsWith("was a"));
  EXPECT_EQ(p.num_tokens(), static_cast<int32_t>(out.token_ids.size()));
}

TEST_F(OutputProcessorTest, StopStringAcrossDeltasIsHeldBackThenCut) {
  const std::vector<int32_t> ids = Ids(" red ball and more");
  SamplingParams params;
  params.stop = {"red ball"};
  SampleOutputProcessor p(tokenizer_, prompt_, params, {});
  std::string text;
  for (size_t i = 0; i < ids.size() && !p.finished(); ++i) text += p.Process(Delta({ids[i]})).text;
  EXPECT_TRUE(p.finished());
  EXPECT_EQ(text, " ");
}

TEST_F(OutputProcessorTest, StopStringOnTheEnginesLastTokenNeedsNoEngineStop) {
  const std::vector<int32_t> ids = Ids(" the end");
  SamplingParams params;
  params.stop = {"end"};
  SampleOutputProcessor p(tokenizer_, prompt_, params, {});
  const Output out = p.Process(Delta(ids, /*finished=*/true));
  EXPECT_EQ(out.finish_reason, FinishReason::kStop);
  EXPECT_EQ(out.stop_string, "end");
  EXPECT_FALSE(p.stopped_early());
}

TEST_F(OutputProcessorTest, HeldBackTextIsReleasedAtTheEnd) {
  const std::vector<int32_t> ids = Ids(" the en");
  SamplingParams params;
  params.stop = {"end"};
  SampleOutputProcessor p(tokenizer_, prompt_, params, {});
  std::string text = p.Process(Delta(ids)).text;
  EXPECT_EQ(text, " the ");  // "en" may start "end"
  const Output last = p.Process(Delta({}, /*finished=*/true, FinishReason::kAbort));
  EXPECT_EQ(text + last.text, " the en");
  EXPECT_EQ(last.finish_reason, FinishReason::kAbort);
}

TEST_F(OutputProcessorTest, LogprobsGetTheirTokenText) {
  const std::vector<int32_t> ids = Ids("Lily");
  ASSERT_EQ(ids.size(), 1u);
  RequestOutput d = Delta(ids);
  d.logprobs.push_back({.token_id = ids[0], .logprob = -0.5f, .top = {{ids[0], -0.5f}, {1, -2.0f}}});
  SampleOutputProcessor with_text(tokenizer_, prompt_, SamplingParams{}, {.logprob_text = true});
  const Output out = with_text.Process(d);
  ASSERT_EQ(out.logprobs.size(), 1u);
  EXPECT_EQ(out.logprobs[0].token.text, " Lily");  // with its space, as it reads in a text
  EXPECT_EQ(out.logprobs[0].token.logprob, -0.5f);
  ASSERT_EQ(out.logprobs[0].top.size(), 2u);
  EXPECT_EQ(out.logprobs[0].top[1].token_id, 1);
  EXPECT_EQ(out.logprobs[0].top[1].text, "<s>");
  SampleOutputProcessor ids_only(tokenizer_, prompt_, SamplingParams{}, {});
  EXPECT_EQ(ids_only.Process(d).logprobs[0].token.text, "");
}

TEST(OutputProcessorNoTokenizerTest, IdsOnly) {
  SampleOutputProcessor p(nullptr, {1, 2}, SamplingParams{}, {});
  RequestOutput d;
  d.token_ids = {5, 6};
  d.finished = true;
  d.finish_reason = FinishReason::kStop;
  d.stop_token_id = 6;
  const Output out = p.Process(d);
  EXPECT_EQ(out.token_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(out.text, "");
  EXPECT_EQ(out.stop_token_id, 6);
  EXPECT_TRUE(p.finished());
}

}  // namespace
}  // namespace moeserve::serving

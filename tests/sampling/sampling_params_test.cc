#include "server/sampling/sampling_params.h"

#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <string>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

constexpr int32_t kVocab = 32000;

// Validates params edited by `edit` and returns the error message ("" when OK).
std::string ErrorOf(const std::function<void(SamplingParams&)>& edit) {
  SamplingParams p;
  edit(p);
  const absl::Status st = Validate(p, kVocab);
  if (st.ok()) return "";
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  return std::string(st.message());
}

TEST(SamplingParamsTest, DefaultsAreValid) {
  EXPECT_EQ(ErrorOf([](SamplingParams&) {}), "");
}

TEST(SamplingParamsTest, AcceptsEveryFieldAtItsBounds) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) {
              p.max_tokens = 5;
              p.min_tokens = 5;
              p.temperature = 100;
              p.top_k = -1;
              p.top_p = 1e-6f;
              p.min_p = 1;
              p.repetition_penalty = 100;
              p.presence_penalty = -2;
              p.frequency_penalty = 2;
              p.logit_bias = {{0, -100.0f}, {kVocab - 1, 100.0f}};
              p.seed = 0;
              p.stop_token_ids = {0, kVocab - 1};
              p.stop = {"a", std::string(kMaxStopStringBytes, 'x')};
              p.logprobs = 20;
              p.prompt_logprobs = 0;
            }),
            "");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.temperature = 0; }), "");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.top_k = 0; }), "");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.top_k = 1000000; }), "");  // larger than vocab: off
}

TEST(SamplingParamsTest, N) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.n = kDefaultMaxSamples; }), "");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.n = 0; }), "n must be in [1, 16] (max_num_samples), got 0");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.n = 17; }), "n must be in [1, 16] (max_num_samples), got 17");
  SamplingParams p;
  p.n = 5;
  const absl::Status st = Validate(p, {.vocab_size = kVocab, .max_n = 4});
  EXPECT_EQ(st.message(), "n must be in [1, 4] (max_num_samples), got 5");
}

TEST(SamplingParamsTest, SampleSeedsAreTheRequestSeedThenDistinct) {
  EXPECT_EQ(SampleSeed(42, 0), 42u);
  std::set<uint64_t> seeds;
  for (int32_t i = 0; i < 16; ++i) seeds.insert(SampleSeed(42, i));
  EXPECT_EQ(seeds.size(), 16u);
  EXPECT_EQ(SampleSeed(42, 3), SampleSeed(42, 3));
  EXPECT_NE(SampleSeed(42, 3), SampleSeed(43, 3));
}

TEST(SamplingParamsTest, MaxTokens) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.max_tokens = 0; }), "max_tokens must be at least 1, got 0");
}

TEST(SamplingParamsTest, MaxTokensBeyondContext) {
  SamplingParams p;
  p.max_tokens = 100;
  SamplingLimits limits{kVocab, /*max_model_len=*/4096, /*prompt_tokens=*/4000};
  EXPECT_EQ(Validate(p, limits).message(),
            "max_tokens must be at most 96 (context 4096 - prompt 4000 tokens), got 100");
  p.max_tokens = 96;
  EXPECT_TRUE(Validate(p, limits).ok());
  limits.prompt_tokens = 4096;
  EXPECT_EQ(Validate(p, limits).message(),
            "the prompt has 4096 tokens, leaving no room for output in the context of 4096 "
            "tokens");
}

TEST(SamplingParamsTest, MinTokens) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.min_tokens = -1; }), "min_tokens must be in [0, max_tokens=16], got -1");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.min_tokens = 17; }), "min_tokens must be in [0, max_tokens=16], got 17");
}

TEST(SamplingParamsTest, Temperature) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.temperature = -1; }), "temperature must be in [0, 100], got -1");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.temperature = 100.5f; }), "temperature must be in [0, 100], got 100.5");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.temperature = std::nanf(""); }),
            "temperature must be in [0, 100], got nan");
}

TEST(SamplingParamsTest, TopK) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.top_k = -2; }), "top_k must be 0 or -1 (disabled) or at least 1, got -2");
}

TEST(SamplingParamsTest, TopP) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.top_p = 0; }), "top_p must be in (0, 1], got 0");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.top_p = 1.5f; }), "top_p must be in (0, 1], got 1.5");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.top_p = std::nanf(""); }), "top_p must be in (0, 1], got nan");
}

TEST(SamplingParamsTest, MinP) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.min_p = -0.1f; }), "min_p must be in [0, 1], got -0.1");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.min_p = 1.1f; }), "min_p must be in [0, 1], got 1.1");
}

TEST(SamplingParamsTest, RepetitionPenalty) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.repetition_penalty = 0; }),
            "repetition_penalty must be in (0, 100], got 0");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.repetition_penalty = std::numeric_limits<float>::infinity(); }),
            "repetition_penalty must be in (0, 100], got inf");
}

TEST(SamplingParamsTest, PresenceAndFrequencyPenalty) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.presence_penalty = 2.5f; }),
            "presence_penalty must be in [-2, 2], got 2.5");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.frequency_penalty = -3; }),
            "frequency_penalty must be in [-2, 2], got -3");
}

TEST(SamplingParamsTest, LogitBias) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) {
              p.logit_bias = {{99999, 1.0f}};
            }),
            "logit_bias token id 99999 is outside the vocabulary [0, 32000)");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) {
              p.logit_bias = {{-1, 1.0f}};
            }),
            "logit_bias token id -1 is outside the vocabulary [0, 32000)");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) {
              p.logit_bias = {{7, 101.0f}};
            }),
            "logit_bias value for token 7 must be in [-100, 100], got 101");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) {
              for (int i = 0; i <= kMaxLogitBiasEntries; ++i) p.logit_bias[i] = 1.0f;
            }),
            "logit_bias may have at most 1024 entries, got 1025");
}

TEST(SamplingParamsTest, StopTokenIds) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) {
              p.stop_token_ids = {5, 32000};
            }),
            "stop_token_ids token id 32000 is outside the vocabulary [0, 32000)");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.stop_token_ids.assign(kMaxStopTokenIds + 1, 3); }),
            "stop_token_ids may have at most 256 entries, got 257");
}

TEST(SamplingParamsTest, StopStrings) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.stop = {"ok", ""}; }), "stop[1] must not be empty");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.stop = {std::string(kMaxStopStringBytes + 1, 'x')}; }),
            "stop[0] must be at most 1024 bytes, got 1025");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.stop.assign(kMaxStopStrings + 1, "x"); }),
            "stop may have at most 16 strings, got 17");
}

TEST(SamplingParamsTest, Logprobs) {
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.logprobs = 21; }), "logprobs must be in [0, 20], got 21");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.logprobs = -1; }), "logprobs must be in [0, 20], got -1");
  EXPECT_EQ(ErrorOf([](SamplingParams& p) { p.prompt_logprobs = 30; }), "prompt_logprobs must be in [0, 20], got 30");
}

TEST(SamplingParamsTest, VocabularyMustBePositive) {
  EXPECT_EQ(Validate(SamplingParams{}, 0).code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace moeserve

// Field names in serving errors: the client's spelling, and attached for error.param.

#include "server/serving/errors.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/sampling/sampling_params.h"

namespace moeserve::serving {
namespace {

TEST(ErrorsTest, FieldErrorCarriesTheField) {
  const absl::Status s = InvalidField("prompt[2]", " = 9 is outside the vocabulary");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "prompt[2] = 9 is outside the vocabulary");
  EXPECT_EQ(ErrorField(s), "prompt[2]");
  EXPECT_FALSE(ErrorField(absl::InvalidArgumentError("x")).has_value());
}

TEST(ErrorsTest, SamplingErrorsAreRenamedForTheTransport) {
  SamplingParams p;
  p.temperature = -1;
  const absl::Status raw = Validate(p, 10);
  FieldNames grpc;
  grpc.sampling_prefix = "sampling.";
  const absl::Status g = NameSamplingError(raw, grpc);
  EXPECT_THAT(std::string(g.message()), ::testing::StartsWith("sampling.temperature must be in"));
  EXPECT_EQ(ErrorField(g), "sampling.temperature");

  p = {};
  p.logprobs = 21;
  FieldNames chat;
  chat.renamed = {{"logprobs", "top_logprobs"}};
  const absl::Status c = NameSamplingError(Validate(p, 10), chat);
  EXPECT_THAT(std::string(c.message()), ::testing::StartsWith("top_logprobs must be in [0, 20]"));
  EXPECT_EQ(ErrorField(c), "top_logprobs");

  p = {};
  p.stop = {"a", ""};
  const absl::Status stop = NameSamplingError(Validate(p, 10), grpc);
  EXPECT_THAT(std::string(stop.message()), ::testing::StartsWith("sampling.stop[1] must not be empty"));
  EXPECT_EQ(ErrorField(stop), "sampling.stop");
}

}  // namespace
}  // namespace moeserve::serving

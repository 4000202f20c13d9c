#include "server/spec/speculator.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/fake_model.h"

namespace moeserve {
namespace {

using ::moeserve::testing::Harness;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

SchedulerConfig Config() {
  SchedulerConfig c;
  c.max_num_batched_tokens = 256;
  c.max_num_seqs = 8;
  c.max_model_len = 128;
  return c;
}

RequestSpec Spec(RequestId id, std::vector<int32_t> prompt) {
  RequestSpec spec;
  spec.id = id;
  spec.prompt_token_ids = std::move(prompt);
  spec.max_tokens = 64;
  return spec;
}

SpeculativeConfig Ngram(int32_t k = 3) {
  SpeculativeConfig c;
  c.method = SpeculativeMethod::kNgram;
  c.num_speculative_tokens = k;
  c.ngram = {.min_n = 1, .max_n = 3};
  return c;
}

TEST(SpecConfigTest, ValidatesNamingTheFlag) {
  EXPECT_TRUE(Validate(SpeculativeConfig{}).ok());  // none
  SpeculativeConfig c = Ngram();
  c.num_speculative_tokens = 0;
  EXPECT_THAT(Validate(c).message(), HasSubstr("--num-speculative-tokens"));
  c = Ngram();
  c.ngram.max_n = 0;
  EXPECT_THAT(Validate(c).message(), HasSubstr("--ngram-max"));
  c = Ngram();
  c.min_acceptance = 1.5;
  EXPECT_THAT(Validate(c).message(), HasSubstr("--speculative-min-acceptance"));
  c = Ngram();
  c.disable_batch_size = -1;
  EXPECT_THAT(Validate(c).message(), HasSubstr("--speculative-disable-batch-size"));
  EXPECT_THAT(ParseSpeculativeMethod("eagle").status().message(), HasSubstr("--speculative-method"));
  EXPECT_EQ(*ParseSpeculativeMethod("mtp"), SpeculativeMethod::kMtp);
  EXPECT_EQ(*ParseSpeculativeMethod("ngram"), SpeculativeMethod::kNgram);
  EXPECT_FALSE(Speculator::Create(SpeculativeConfig{}).ok());
}

TEST(SpeculatorTest, NgramDraftsComeFromTheRequestsOwnTokens) {
  Harness h(Config(), KvCacheConfig{64, 4, true});
  auto spec = *Speculator::Create(Ngram());
  // The prompt repeats "7 8 9 10": after "... 7 8" lookup proposes "9 10 7".
  ASSERT_TRUE(h.Add(Spec(1, {7, 8, 9, 10, 7, 8, 9, 10, 7, 8})).ok());
  const std::vector<RequestId> ids = {1};
  EXPECT_EQ(spec->ProposeDrafts(ids, &h.scheduler()), 0);  // still waiting
  h.Step();
  const Request* r = h.scheduler().GetRequest(1);
  std::vector<int32_t> tokens(r->token_ids().begin(), r->token_ids().end());
  std::vector<int32_t> expected;
  NgramProposer::Create({.min_n = 1, .max_n = 3})->Propose(tokens, 3, &expected);
  EXPECT_EQ(spec->ProposeDrafts(ids, &h.scheduler()), expected.empty() ? 0 : 1);
  EXPECT_EQ(std::vector<int32_t>(r->draft_token_ids().begin(), r->draft_token_ids().end()), expected);
}

TEST(SpeculatorTest, OffForAStepWhenEnoughRequestsDecode) {
  Harness h(Config(), KvCacheConfig{64, 4, true});
  SpeculativeConfig c;
  c.method = SpeculativeMethod::kMtp;  // drafts come from SetModelDrafts
  c.disable_batch_size = 2;
  auto spec = *Speculator::Create(c);
  EXPECT_TRUE(spec->ActiveFor(1));
  EXPECT_FALSE(spec->ActiveFor(2));
  ASSERT_TRUE(h.Add(Spec(1, {5, 5, 5, 5})).ok());
  ASSERT_TRUE(h.Add(Spec(2, {6, 6, 6, 6})).ok());
  h.Step();
  const std::vector<RequestId> ids = {1, 2};
  spec->SetModelDrafts(1, std::vector<int32_t>{1, 2});
  spec->SetModelDrafts(2, std::vector<int32_t>{1, 2});
  EXPECT_EQ(spec->ProposeDrafts(ids, &h.scheduler()), 0);
  EXPECT_TRUE(h.scheduler().GetRequest(1)->draft_token_ids().empty());
  ASSERT_TRUE(h.scheduler().Abort(2));
  h.Step();  // releases 2
  spec->SetModelDrafts(1, std::vector<int32_t>{1, 2});
  EXPECT_EQ(spec->ProposeDrafts(ids, &h.scheduler()), 1);
  EXPECT_FALSE(h.scheduler().GetRequest(1)->draft_token_ids().empty());
}

TEST(SpeculatorTest, LowAcceptanceBacksOffThenTriesAgain) {
  Harness h(Config(), KvCacheConfig{64, 4, true});
  SpeculativeConfig c;
  c.method = SpeculativeMethod::kMtp;  // drafts come from SetModelDrafts
  c.num_speculative_tokens = 2;
  c.min_acceptance = 0.2;
  auto spec = *Speculator::Create(c);
  RequestSpec s = Spec(1, {1, 2, 3});
  s.max_tokens = 120;
  ASSERT_TRUE(h.Add(s).ok());
  h.Step();
  const std::vector<RequestId> ids = {1};
  // Always-wrong drafts: EMA 1 -> .7 -> .49 -> .343 -> .24 -> .168 < .2 after 5 steps.
  int steps = 0;
  while (!spec->BackingOff(1)) {
    ASSERT_LT(steps, 10);
    spec->SetModelDrafts(1, std::vector<int32_t>{63, 63});
    ASSERT_EQ(spec->ProposeDrafts(ids, &h.scheduler()), 1);
    const SchedulerOutput& out = h.Begin();
    spec->RecordStep(out, std::vector<int32_t>{0});
    h.Finish();
    ++steps;
  }
  EXPECT_EQ(steps, 5);
  for (int i = 0; i < SpeculativeConfig::kBackoffSteps; ++i) {
    spec->SetModelDrafts(1, std::vector<int32_t>{63, 63});
    EXPECT_EQ(spec->ProposeDrafts(ids, &h.scheduler()), 0) << i;
    h.Step();
  }
  EXPECT_FALSE(spec->BackingOff(1));
  spec->SetModelDrafts(1, std::vector<int32_t>{63, 63});
  EXPECT_EQ(spec->ProposeDrafts(ids, &h.scheduler()), 1);
  // Model drafts are used once.
  EXPECT_EQ(spec->ProposeDrafts(ids, &h.scheduler()), 0);
  spec->Forget(1);
}

TEST(SpeculatorTest, CountsDraftsAndAcceptancePerPosition) {
  SpeculativeConfig c = Ngram(3);
  auto spec = *Speculator::Create(c);
  SchedulerOutput step;
  step.scheduled.resize(4);
  step.scheduled[0].num_draft_tokens = 3;
  step.scheduled[1].num_draft_tokens = 2;
  step.scheduled[2].num_draft_tokens = 0;
  step.scheduled[3].num_draft_tokens = 3;
  spec->RecordStep(step, std::vector<int32_t>{3, 1, 0, 0});
  const SpecDecodeMetrics& m = spec->metrics();
  EXPECT_EQ(m.num_drafts, 3);
  EXPECT_EQ(m.draft_tokens, 8);
  EXPECT_EQ(m.accepted_tokens, 4);
  EXPECT_THAT(m.draft_tokens_per_position, ElementsAre(3, 3, 2));
  EXPECT_THAT(m.accepted_tokens_per_position, ElementsAre(2, 1, 1));
}

}  // namespace
}  // namespace moeserve

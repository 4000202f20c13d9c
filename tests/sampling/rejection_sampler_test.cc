// Draft verification (speculative decoding): greedy acceptance, limits, logprobs, seeds, and a
// chi-square test that speculative sampling has the distribution of plain sampling.

#include "server/sampling/rejection_sampler.h"

#include <array>
#include <cmath>
#include <map>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/sampling/sampler.h"

namespace moeserve {
namespace {

using ::testing::ElementsAre;

constexpr int32_t kVocab = 6;

// A tiny "model": the logits after a context depend on its last two tokens.
std::vector<float> ModelLogits(const std::vector<int32_t>& context) {
  const int32_t a = context.size() >= 2 ? context[context.size() - 2] : 0;
  const int32_t b = context.empty() ? 0 : context.back();
  std::vector<float> logits(kVocab);
  for (int32_t v = 0; v < kVocab; ++v) {
    const uint32_t h = static_cast<uint32_t>((a * 31 + b * 7 + v * 13) * 2654435761u) >> 16;
    logits[v] = static_cast<float>(h % 1000) / 400.0f;  // [0, 2.5)
  }
  return logits;
}

// A deterministic drafter that is often but not always right: the argmax of perturbed logits.
int32_t DraftToken(const std::vector<int32_t>& context) {
  std::vector<float> logits = ModelLogits(context);
  logits[(context.size() * 5) % kVocab] += 0.8f;
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

struct Generation {
  std::vector<int32_t> outputs;
  int32_t drafts = 0;
  int32_t accepted = 0;
};

// Generates `n` tokens after `prompt`, plainly (k = 0) or verifying k drafts per step.
Generation Generate(Sampler& sampler, const SamplingParams& params, const std::vector<int32_t>& prompt, int32_t n,
                    int32_t k, uint64_t seed, bool accept_everything = false) {
  Generation g;
  std::vector<int32_t> context = prompt;
  std::vector<int32_t> output_and_drafts;
  SampledTokens result;
  while (static_cast<int32_t>(g.outputs.size()) < n) {
    std::vector<int32_t> drafts;
    std::vector<float> logits;
    std::vector<int32_t> scratch = context;
    for (int32_t j = 0; j <= k; ++j) {
      const std::vector<float> row = ModelLogits(scratch);
      logits.insert(logits.end(), row.begin(), row.end());
      if (j == k) break;
      drafts.push_back(DraftToken(scratch));
      scratch.push_back(drafts.back());
    }
    output_and_drafts = g.outputs;
    output_and_drafts.insert(output_and_drafts.end(), drafts.begin(), drafts.end());
    const absl::Span<const int32_t> od = output_and_drafts;
    VerifyDrafts(sampler,
                 SamplingRow{.logits = logits,
                             .params = &params,
                             .prompt_token_ids = prompt,
                             .output_token_ids = od.first(g.outputs.size()),
                             .seed = seed,
                             .draft_token_ids = od.subspan(g.outputs.size())},
                 &result);
    EXPECT_TRUE(result.status.ok()) << result.status;
    EXPECT_EQ(result.tokens.size(), static_cast<size_t>(result.num_accepted) + 1);
    g.drafts += k;
    g.accepted += result.num_accepted;
    if (accept_everything) {  // a wrong verifier, for the negative control
      const SampleResult last = result.tokens.back();
      result.tokens.clear();
      for (int32_t d : drafts) result.tokens.push_back(SampleResult{.token_id = d});
      result.tokens.push_back(last);
    }
    for (const SampleResult& s : result.tokens) {
      context.push_back(s.token_id);
      g.outputs.push_back(s.token_id);
    }
  }
  g.outputs.resize(n);
  return g;
}

SamplingParams RichParams() {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_k = 5;
  p.top_p = 0.97f;
  p.min_p = 0.02f;
  p.repetition_penalty = 1.3f;
  p.frequency_penalty = 0.4f;
  p.presence_penalty = 0.2f;
  p.logit_bias = {{2, 0.6f}, {4, -0.5f}};
  return p;
}

// Upper critical value of chi-square with `df` degrees of freedom at the normal quantile z
// (Wilson-Hilferty).
double ChiSquareCritical(int df, double z) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

// Two-sample chi-square homogeneity statistic over the cells of two equal-size samples, and its
// degrees of freedom (non-empty cells - 1).
std::pair<double, int> TwoSampleChiSquare(const std::map<std::vector<int32_t>, int>& a,
                                          const std::map<std::vector<int32_t>, int>& b) {
  std::map<std::vector<int32_t>, std::pair<int, int>> cells;
  for (const auto& [key, n] : a) cells[key].first = n;
  for (const auto& [key, n] : b) cells[key].second = n;
  double chi2 = 0.0;
  for (const auto& [key, n] : cells) {
    const double d = n.first - n.second;
    chi2 += d * d / (n.first + n.second);
  }
  return {chi2, static_cast<int>(cells.size()) - 1};
}

TEST(RejectionSamplerTest, GreedyAcceptsWhileTheArgmaxMatches) {
  Sampler sampler({.vocab_size = 4});
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  // Argmaxes per row: 2, 1, 3, 0.
  const std::vector<float> logits = {0, 1, 5, 2, /**/ 0, 9, 1, 2, /**/ 1, 2, 3, 4, /**/ 7, 1, 1, 1};
  const std::vector<int32_t> outputs = {3};
  SampledTokens r;
  auto verify = [&](std::vector<int32_t> drafts) -> std::vector<int32_t> {
    std::vector<int32_t> od = outputs;
    od.insert(od.end(), drafts.begin(), drafts.end());
    VerifyDrafts(sampler,
                 {.logits = absl::MakeConstSpan(logits).first((drafts.size() + 1) * 4),
                  .params = &greedy,
                  .output_token_ids = absl::MakeConstSpan(od).first(outputs.size()),
                  .draft_token_ids = absl::MakeConstSpan(od).subspan(outputs.size())},
                 &r);
    EXPECT_TRUE(r.status.ok()) << r.status;
    std::vector<int32_t> tokens;
    for (const SampleResult& s : r.tokens) tokens.push_back(s.token_id);
    return tokens;
  };
  EXPECT_THAT(verify({2, 1, 3}), ElementsAre(2, 1, 3, 0));  // all accepted + bonus
  EXPECT_EQ(r.num_accepted, 3);
  EXPECT_THAT(verify({2, 0, 3}), ElementsAre(2, 1));  // second draft rejected
  EXPECT_EQ(r.num_accepted, 1);
  EXPECT_THAT(verify({1, 1, 3}), ElementsAre(2));
  EXPECT_EQ(r.num_accepted, 0);
  EXPECT_THAT(verify({}), ElementsAre(2));  // no drafts: plain sampling
  EXPECT_EQ(NumAcceptedDrafts(std::vector<int32_t>{2, 1, 3, 0}, std::vector<int32_t>{2, 1, 3}), 3);
  EXPECT_EQ(NumAcceptedDrafts(std::vector<int32_t>{2, 1, 3, 0}, std::vector<int32_t>{2, 0, 3}), 1);
  EXPECT_EQ(NumAcceptedDrafts(std::vector<int32_t>{5}, std::vector<int32_t>{}), 0);
}

TEST(RejectionSamplerTest, EachRowSeesTheDraftsBeforeItAsOutputs) {
  // A penalty on token 1: row 1 must penalise draft 1 (= token 1) as if it had been output.
  Sampler sampler({.vocab_size = 3, .eos_token_ids = {2}});
  SamplingParams p;
  p.temperature = 0.0f;
  p.presence_penalty = 2.0f;
  p.min_tokens = 2;  // EOS (2) suppressed at output positions 0 and 1, allowed at 2
  const std::vector<float> logits = {0, 1, 0, /**/ 0, 1.5f, 0.1f, /**/ 0, 0, 9};
  const std::vector<int32_t> od = {1, 0};  // no outputs yet, drafts 1 and 0
  SampledTokens r;
  VerifyDrafts(
      sampler,
      {.logits = logits, .params = &p, .output_token_ids = absl::MakeConstSpan(od).first(0), .draft_token_ids = od},
      &r);
  ASSERT_TRUE(r.status.ok()) << r.status;
  // Row 0: argmax 1 (accept). Row 1: 1.5 - 2 < 0 < 0.1, but EOS (2) is suppressed: 0 (accept).
  // Row 2: EOS allowed now: 2.
  ASSERT_EQ(r.tokens.size(), 3u);
  EXPECT_EQ(r.tokens[0].token_id, 1);
  EXPECT_EQ(r.tokens[1].token_id, 0);
  EXPECT_EQ(r.tokens[2].token_id, 2);
}

TEST(RejectionSamplerTest, LogprobsAreThoseOfEachTokensRow) {
  Sampler sampler({.vocab_size = kVocab});
  SamplingParams p = RichParams();
  p.logprobs = 2;
  const std::vector<int32_t> prompt = {1, 4, 2};
  // Verify two drafts taken from plain sampling: both accepted, each logprob that of its row.
  std::vector<int32_t> context = prompt, outputs;
  std::vector<SampleResult> plain(3);
  for (int j = 0; j < 3; ++j) {
    const std::vector<float> row = ModelLogits(context);
    sampler.SampleRow(
        {.logits = row, .params = &p, .prompt_token_ids = prompt, .output_token_ids = outputs, .seed = 99}, &plain[j]);
    ASSERT_TRUE(plain[j].status.ok());
    context.push_back(plain[j].token_id);
    outputs.push_back(plain[j].token_id);
  }
  std::vector<float> logits;
  context = prompt;
  for (int j = 0; j < 3; ++j) {
    const std::vector<float> row = ModelLogits(context);
    logits.insert(logits.end(), row.begin(), row.end());
    context.push_back(plain[j].token_id);
  }
  const std::vector<int32_t> drafts = {plain[0].token_id, plain[1].token_id};
  SampledTokens r;
  VerifyDrafts(sampler,
               {.logits = logits,
                .params = &p,
                .prompt_token_ids = prompt,
                .output_token_ids = absl::MakeConstSpan(drafts).first(0),
                .seed = 99,
                .draft_token_ids = drafts},
               &r);
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.num_accepted, 2);
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(r.tokens[j].token_id, plain[j].token_id);
    EXPECT_EQ(r.tokens[j].logprob, plain[j].logprob);
    EXPECT_EQ(r.tokens[j].top_logprobs, plain[j].top_logprobs);
  }
}

TEST(RejectionSamplerTest, BadRowsFailAlone) {
  Sampler sampler({.vocab_size = 3});
  SamplingParams p;
  const std::vector<float> logits = {0, 1, 0, /**/ 0, NAN, 1};
  const std::vector<int32_t> drafts = {1};
  SampledTokens r;
  // Row 0 samples some token; if it is the draft, row 1 (NaN) fails the request.
  for (uint64_t seed = 0; seed < 20; ++seed) {
    VerifyDrafts(sampler,
                 {.logits = logits,
                  .params = &p,
                  .output_token_ids = absl::MakeConstSpan(drafts).first(0),
                  .seed = seed,
                  .draft_token_ids = drafts},
                 &r);
    if (r.tokens.size() == 2) {
      EXPECT_FALSE(r.status.ok());
    } else {
      EXPECT_TRUE(r.status.ok());
      EXPECT_EQ(r.tokens.size(), 1u);
    }
  }
  VerifyDrafts(sampler,
               {.logits = absl::MakeConstSpan(logits).first(3),
                .params = &p,
                .output_token_ids = absl::MakeConstSpan(drafts).first(0),
                .draft_token_ids = drafts},
               &r);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  // The drafts must follow the outputs in memory (Request::output_and_draft_token_ids()).
  const std::vector<int32_t> outputs = {0};
  VerifyDrafts(sampler, {.logits = logits, .params = &p, .output_token_ids = outputs, .draft_token_ids = drafts}, &r);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(RejectionSamplerTest, PositionJUsesTheJthMask) {
  // Structured output: position j is masked with mask j, so a draft the grammar forbids is
  // rejected even where it is the target's argmax, and the token after it obeys the mask.
  Sampler sampler({.vocab_size = 40});  // two mask words per position
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  std::vector<float> logits(3 * 40, 0.0f);
  logits[0 * 40 + 33] = 5;  // position 0: argmax 33
  logits[1 * 40 + 7] = 5;   // position 1: argmax 7, forbidden by mask 1
  logits[1 * 40 + 9] = 4;
  logits[2 * 40 + 1] = 5;
  std::vector<uint32_t> masks(3 * 2, 0xffffffffu);
  masks[1 * 2 + 0] &= ~(1u << 7);
  const std::vector<int32_t> od = {33, 7};
  SampledTokens r;
  VerifyDrafts(sampler,
               {.logits = logits,
                .params = &greedy,
                .output_token_ids = absl::MakeConstSpan(od).first(0),
                .allowed_tokens = masks.data(),
                .draft_token_ids = od},
               &r);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.num_accepted, 1);
  ASSERT_EQ(r.tokens.size(), 2u);
  EXPECT_EQ(r.tokens[0].token_id, 33);
  EXPECT_EQ(r.tokens[1].token_id, 9);
}

TEST(RejectionSamplerTest, SameSeedGivesPlainSamplingsTokens) {
  Sampler sampler({.vocab_size = kVocab});
  const SamplingParams p = RichParams();
  const std::vector<int32_t> prompt = {3, 1, 4};
  int32_t drafts = 0, accepted = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    const Generation plain = Generate(sampler, p, prompt, 8, 0, seed);
    for (int32_t k = 1; k <= 4; ++k) {
      const Generation spec = Generate(sampler, p, prompt, 8, k, seed);
      ASSERT_EQ(spec.outputs, plain.outputs) << "seed " << seed << " k " << k;
      drafts += spec.drafts;
      accepted += spec.accepted;
    }
  }
  // Both outcomes happen.
  EXPECT_GT(accepted, drafts / 10);
  EXPECT_LT(accepted, drafts);
}

// Speculative sampling (k = 3) and plain sampling with independent seeds produce the same
// distribution of 3-token continuations (216 cells): two-sample chi-square at p = 1e-4. The
// negative control (accepting every draft) must fail the same test.
TEST(RejectionSamplerTest, ChiSquareSpeculativeEqualsPlainSampling) {
  Sampler sampler({.vocab_size = kVocab});
  const std::vector<int32_t> prompt = {2, 5};
  constexpr int kSamples = 20000;
  for (const SamplingParams& params : {RichParams(), SamplingParams{}}) {
    std::map<std::vector<int32_t>, int> plain, spec, wrong;
    int64_t drafts = 0, accepted = 0;
    for (int i = 0; i < kSamples; ++i) {
      ++plain[Generate(sampler, params, prompt, 3, 0, 1000000 + i).outputs];
      const Generation g = Generate(sampler, params, prompt, 3, 3, 2000000 + i);
      ++spec[g.outputs];
      drafts += g.drafts;
      accepted += g.accepted;
      ++wrong[Generate(sampler, params, prompt, 3, 3, 3000000 + i, true).outputs];
    }
    const auto [chi2, df] = TwoSampleChiSquare(plain, spec);
    const double critical = ChiSquareCritical(df, 3.719);  // p = 1e-4
    EXPECT_LT(chi2, critical) << "df " << df;
    const auto [chi2_wrong, df_wrong] = TwoSampleChiSquare(plain, wrong);
    EXPECT_GT(chi2_wrong, ChiSquareCritical(df_wrong, 3.719));
    std::printf("chi2 %.1f (df %d, critical %.1f), acceptance %.3f; accept-all control %.1f\n", chi2, df, critical,
                static_cast<double>(accepted) / drafts, chi2_wrong);
    EXPECT_GT(df, 50);
    EXPECT_GT(accepted, drafts / 10);
  }
}

// Against the exact distribution computed here independently (temperature, logit bias and a
// repetition penalty, no truncation): one-sample chi-square over the first two tokens.
TEST(RejectionSamplerTest, ChiSquareAgainstTheExactDistribution) {
  Sampler sampler({.vocab_size = kVocab});
  SamplingParams p;
  p.temperature = 0.7f;
  p.repetition_penalty = 1.5f;
  p.logit_bias = {{0, 1.0f}};
  const std::vector<int32_t> prompt = {1, 3};
  auto probs = [&](const std::vector<int32_t>& context) {
    std::vector<float> s = ModelLogits(context);
    s[0] += 1.0f;
    std::vector<bool> seen(kVocab, false);
    for (int32_t t : context) seen[t] = true;
    std::vector<double> q(kVocab);
    double z = 0.0;
    for (int32_t v = 0; v < kVocab; ++v) {
      const float x = seen[v] ? (s[v] > 0 ? s[v] / 1.5f : s[v] * 1.5f) : s[v];
      q[v] = std::exp(static_cast<double>(x) / 0.7);
      z += q[v];
    }
    for (double& v : q) v /= z;
    return q;
  };
  constexpr int kSamples = 30000;
  std::array<int, kVocab * kVocab> counts{};
  for (int i = 0; i < kSamples; ++i) {
    const Generation g = Generate(sampler, p, prompt, 2, 2, 77 + i);
    ++counts[g.outputs[0] * kVocab + g.outputs[1]];
  }
  // Cells expecting fewer than 5 samples are pooled into one.
  double chi2 = 0.0, pooled_expected = 0.0;
  int pooled_count = 0, cells = 0;
  const std::vector<double> first = probs(prompt);
  for (int32_t a = 0; a < kVocab; ++a) {
    std::vector<int32_t> context = prompt;
    context.push_back(a);
    const std::vector<double> second = probs(context);
    for (int32_t b = 0; b < kVocab; ++b) {
      const double expected = kSamples * first[a] * second[b];
      if (expected < 5.0) {
        pooled_expected += expected;
        pooled_count += counts[a * kVocab + b];
        continue;
      }
      const double d = counts[a * kVocab + b] - expected;
      chi2 += d * d / expected;
      ++cells;
    }
  }
  if (pooled_expected > 0.0) {
    const double d = pooled_count - pooled_expected;
    chi2 += d * d / pooled_expected;
    ++cells;
  }
  EXPECT_GT(cells, 20);
  EXPECT_LT(chi2, ChiSquareCritical(cells - 1, 3.719)) << cells << " cells";
}

}  // namespace
}  // namespace moeserve

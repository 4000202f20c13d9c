#include "server/sampling/sampler.h"

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

Sampler MakeSampler(int32_t vocab, std::vector<int32_t> eos = {}) {
  SamplerOptions options;
  options.vocab_size = vocab;
  options.eos_token_ids = std::move(eos);
  options.engine_seed = 1234;
  return Sampler(std::move(options));
}

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

// One row sampled on its own.
SampleResult SampleOne(Sampler& sampler, const std::vector<float>& logits, const SamplingParams& p,
                       const std::vector<int32_t>& output = {}, const std::vector<int32_t>& prompt = {},
                       uint64_t seed = 0) {
  SamplingRow row;
  row.logits = logits;
  row.params = &p;
  row.prompt_token_ids = prompt;
  row.output_token_ids = output;
  row.seed = seed;
  SampleResult result;
  sampler.SampleRow(row, &result);
  return result;
}

TEST(SamplerTest, GreedyTakesTheLowestIdAmongTiedMaxima) {
  Sampler sampler = MakeSampler(5);
  const SamplingParams p = Greedy();
  EXPECT_EQ(SampleOne(sampler, {1.0f, 4.0f, 2.0f, 4.0f, 4.0f}, p).token_id, 1);
  EXPECT_EQ(SampleOne(sampler, {9.0f, 4.0f, 2.0f, 4.0f, 9.0f}, p).token_id, 0);
  EXPECT_EQ(SampleOne(sampler, {-kInf, -kInf, -3.0f, -3.0f, -kInf}, p).token_id, 2);
}

TEST(SamplerTest, AllowedTokensMaskComesFirstAndKeepsRawLogprobs) {
  Sampler sampler = MakeSampler(40);
  std::vector<float> logits(40, 0.0f);
  logits[3] = 9.0f;   // the best, masked out
  logits[35] = 5.0f;  // the best allowed (second word)
  logits[36] = 5.0f;
  std::vector<uint32_t> mask = {0xFFFFFFF7u, 0u};
  mask[1] |= 1u << (35 - 32);
  mask[1] |= 1u << (36 - 32);
  SamplingParams p = Greedy();
  p.logprobs = 1;
  p.logit_bias = {{3, 50.0f}};  // a bias does not bring a masked token back
  SamplingRow row{.logits = logits, .params = &p, .allowed_tokens = mask.data()};
  SampleResult r;
  sampler.SampleRow(row, &r);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.token_id, 35);  // the best allowed, ties to the lower id
  p.logit_bias[36] = 1.0f;    // a bias still moves allowed tokens
  sampler.SampleRow(row, &r);
  EXPECT_EQ(r.token_id, 36);
  p.logit_bias.erase(36);
  mask[0] = 0u;
  sampler.SampleRow(row, &r);
  EXPECT_EQ(r.token_id, 35);
  // Logprobs are the raw model's (the masked top token keeps its probability).
  ASSERT_EQ(r.top_logprobs.size(), 1u);
  EXPECT_EQ(r.top_logprobs[0].token_id, 3);
  // Sampled rows never leave the mask.
  SamplingParams t;
  t.temperature = 2.0f;
  row.params = &t;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    row.seed = seed;
    sampler.SampleRow(row, &r);
    EXPECT_TRUE(r.token_id == 35 || r.token_id == 36) << r.token_id;
  }
}

TEST(SamplerTest, GreedyIgnoresTopKTopPMinP) {
  Sampler sampler = MakeSampler(3);
  SamplingParams p = Greedy();
  p.top_k = 1;
  p.top_p = 0.1f;
  p.min_p = 0.9f;
  EXPECT_EQ(SampleOne(sampler, {1.0f, 2.0f, 3.0f}, p).token_id, 2);
  p.temperature = 0.5f * kGreedyTemperature;  // below the threshold: greedy too
  EXPECT_EQ(SampleOne(sampler, {1.0f, 2.0f, 3.0f}, p).token_id, 2);
}

TEST(SamplerTest, LogitBiasComesFirst) {
  Sampler sampler = MakeSampler(3);
  SamplingParams p = Greedy();
  p.logit_bias = {{0, 2.5f}};
  EXPECT_EQ(SampleOne(sampler, {1.0f, 3.0f, 3.4f}, p).token_id, 0);
}

TEST(SamplerTest, MinTokensSuppressesStopAndEosUntilReached) {
  Sampler sampler = MakeSampler(4, /*eos=*/{3});
  SamplingParams p = Greedy();
  p.min_tokens = 2;
  p.stop_token_ids = {2};
  p.logit_bias = {{3, 100.0f}};  // bias is applied before min_tokens: it cannot rescue EOS
  const std::vector<float> logits = {0.0f, 1.0f, 5.0f, 4.0f};
  EXPECT_EQ(SampleOne(sampler, logits, p, /*output=*/{7 % 4}).token_id, 1);
  EXPECT_EQ(SampleOne(sampler, logits, p, /*output=*/{1, 1}).token_id, 3);
  p.logit_bias.clear();
  EXPECT_EQ(SampleOne(sampler, logits, p, /*output=*/{1, 1}).token_id, 2);
  p.ignore_eos = true;  // EOS is an ordinary token then, not suppressed
  p.stop_token_ids.clear();
  EXPECT_EQ(SampleOne(sampler, {0.0f, 1.0f, 2.0f, 4.0f}, p, {}).token_id, 3);
}

// A masked row's min_tokens is its constraint's business (output_constraint.h): the sampler does
// not suppress the EOS the mask allows, so a grammar that can only end is never left with nothing.
TEST(SamplerTest, MinTokensLeavesAMaskedRowToItsMask) {
  Sampler sampler = MakeSampler(4, /*eos=*/{3});
  SamplingParams p = Greedy();
  p.min_tokens = 5;
  const std::vector<uint32_t> only_eos = {1u << 3};
  const std::vector<float> logits = {0.0f, 1.0f, 5.0f, 4.0f};
  SamplingRow row{.logits = logits, .params = &p, .allowed_tokens = only_eos.data()};
  SampleResult result;
  sampler.SampleRow(row, &result);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.token_id, 3);
}

TEST(SamplerTest, PenaltiesApplyBeforeTemperatureAndFilters) {
  Sampler sampler = MakeSampler(3);
  SamplingParams p = Greedy();
  p.repetition_penalty = 2.0f;
  // 2 / 2 = 1 < 1.5: the repeated token loses.
  EXPECT_EQ(SampleOne(sampler, {2.0f, 1.5f, -1.0f}, p, /*output=*/{0}).token_id, 1);
  // The penalty also counts prompt tokens.
  EXPECT_EQ(SampleOne(sampler, {2.0f, 1.5f, -1.0f}, p, {}, /*prompt=*/{0}).token_id, 1);
  p.repetition_penalty = 1.0f;
  p.frequency_penalty = 0.3f;
  // 2 - 2 * 0.3 = 1.4 < 1.5 after two occurrences, 1.7 > 1.5 after one.
  EXPECT_EQ(SampleOne(sampler, {2.0f, 1.5f, -1.0f}, p, {0, 0}).token_id, 1);
  EXPECT_EQ(SampleOne(sampler, {2.0f, 1.5f, -1.0f}, p, {0}).token_id, 0);
  p.frequency_penalty = 0.0f;
  p.presence_penalty = 0.6f;
  EXPECT_EQ(SampleOne(sampler, {2.0f, 1.5f, -1.0f}, p, {0}).token_id, 1);
  // With top_k = 1 the sampled path must agree with the penalized argmax.
  p.temperature = 1.0f;
  p.top_k = 1;
  EXPECT_EQ(SampleOne(sampler, {2.0f, 1.5f, -1.0f}, p, {0}, {}, 99).token_id, 1);
}

TEST(SamplerTest, LogprobsAreOfTheRawDistribution) {
  Sampler sampler = MakeSampler(5);
  const std::vector<float> logits = {1.0f, 3.0f, -kInf, 3.0f, 0.5f};
  double z = 0.0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  const auto lp = [&](int i) { return static_cast<float>(logits[i] - std::log(z)); };

  SamplingParams p = Greedy();
  p.logit_bias = {{4, 10.0f}};  // changes the choice, not the reported distribution
  p.logprobs = 3;
  const SampleResult r = SampleOne(sampler, logits, p);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.token_id, 4);
  EXPECT_NEAR(r.logprob, lp(4), 1e-6);
  ASSERT_EQ(r.top_logprobs.size(), 3u);
  EXPECT_EQ(r.top_logprobs[0].token_id, 1);  // tie with 3: lower id first
  EXPECT_EQ(r.top_logprobs[1].token_id, 3);
  EXPECT_EQ(r.top_logprobs[2].token_id, 0);
  for (const TokenLogprob& e : r.top_logprobs) EXPECT_NEAR(e.logprob, lp(e.token_id), 1e-6);

  p.logprobs = 0;
  const SampleResult only = SampleOne(sampler, logits, p);
  EXPECT_TRUE(only.top_logprobs.empty());
  EXPECT_NEAR(only.logprob, lp(4), 1e-6);
  p.logprobs = 20;  // more than the vocabulary: all of it, -inf last
  const SampleResult all = SampleOne(sampler, logits, p);
  ASSERT_EQ(all.top_logprobs.size(), 5u);
  EXPECT_EQ(all.top_logprobs[4].token_id, 2);
  EXPECT_EQ(all.top_logprobs[4].logprob, -kInf);
}

TEST(SamplerTest, BadRowsFailAlone) {
  Sampler sampler = MakeSampler(3);
  SamplingParams p;
  p.temperature = 0.8f;
  const std::vector<float> good = {1.0f, 2.0f, 3.0f};
  const std::vector<float> nan = {1.0f, std::nanf(""), 3.0f};
  const std::vector<float> inf = {1.0f, kInf, 3.0f};
  const std::vector<float> short_row = {1.0f, 2.0f};
  SamplingParams suppress_all = Greedy();
  suppress_all.min_tokens = 1;
  suppress_all.stop_token_ids = {0, 1, 2};
  std::vector<SamplingRow> rows(5);
  rows[0] = {good, &p, {}, {}, 5};
  rows[1] = {nan, &p, {}, {}, 5};
  rows[2] = {inf, &p, {}, {}, 5};
  rows[3] = {short_row, &p, {}, {}, 5};
  rows[4] = {good, &suppress_all, {}, {}, 5};
  std::vector<SampleResult> results;
  sampler.Sample(rows, &results);
  ASSERT_EQ(results.size(), 5u);
  EXPECT_TRUE(results[0].status.ok());
  EXPECT_EQ(results[0].token_id, SampleOne(sampler, good, p, {}, {}, 5).token_id);
  // Non-numbers in the model's logits are its fault, not the request's: Internal.
  EXPECT_EQ(results[1].status, ModelLogitsFault(/*nan=*/true));
  EXPECT_EQ(results[1].status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(results[1].status.message(),
            "the model produced logits that contain NaN (a numerical fault of the model or its weights)");
  EXPECT_EQ(results[2].status, ModelLogitsFault(/*nan=*/false));
  EXPECT_EQ(results[2].status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(results[3].status.message(), "logits row has 2 entries, expected 3");
  EXPECT_EQ(results[4].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(results[4].status.message(), "every token is excluded (all logits are -inf)");
  for (int i = 1; i < 5; ++i) EXPECT_EQ(results[i].token_id, -1);
}

TEST(SamplerTest, RequestSeeds) {
  Sampler a = MakeSampler(4), b = MakeSampler(4);
  SamplingParams p;
  p.seed = 77;
  EXPECT_EQ(a.RequestSeed(p), 77u);
  p.seed.reset();
  const uint64_t s1 = a.RequestSeed(p), s2 = a.RequestSeed(p);
  EXPECT_NE(s1, s2);
  EXPECT_EQ(b.RequestSeed(p), s1);  // same engine seed, same sequence
}

// A toy model: the logits of the next token depend on the request's own history only.
std::vector<float> ToyLogits(int32_t vocab, int32_t request, const std::vector<int32_t>& output) {
  uint64_t h = 0x9e3779b97f4a7c15ull * (request + 1);
  for (int32_t t : output) h = (h ^ static_cast<uint64_t>(t)) * 0x100000001b3ull;
  std::mt19937_64 rng(h);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(vocab);
  for (float& l : logits) l = normal(rng);
  return logits;
}

// Runs `requests` in one batch for `steps` steps, each at the position given by `order`, and
// returns each request's output.
std::vector<std::vector<int32_t>> Generate(const std::vector<SamplingParams>& params, const std::vector<int32_t>& order,
                                           int steps, uint64_t engine_seed) {
  constexpr int32_t kVocab = 300;
  SamplerOptions options;
  options.vocab_size = kVocab;
  options.engine_seed = engine_seed;
  Sampler sampler(options);
  const size_t n = params.size();
  std::vector<uint64_t> seeds(n);
  for (int32_t r : order) seeds[r] = sampler.RequestSeed(params[r]);
  std::vector<std::vector<int32_t>> outputs(n);
  std::vector<int32_t> prompt = {1, 2, 3};
  std::vector<SampleResult> results;
  for (int step = 0; step < steps; ++step) {
    std::vector<std::vector<float>> logits(n);
    std::vector<SamplingRow> rows;
    for (int32_t r : order) {
      logits[r] = ToyLogits(kVocab, r, outputs[r]);
      rows.push_back({logits[r], &params[r], prompt, outputs[r], seeds[r]});
    }
    sampler.Sample(rows, &results);
    for (size_t i = 0; i < order.size(); ++i) {
      EXPECT_TRUE(results[i].status.ok());
      outputs[order[i]].push_back(results[i].token_id);
    }
  }
  return outputs;
}

TEST(SamplerTest, SeededRequestIsIndependentOfBatchAndPosition) {
  std::vector<SamplingParams> params(6);
  params[0].seed = 2024;  // the request under test: T = 1, top_p 0.9, penalties
  params[0].top_p = 0.9f;
  params[0].frequency_penalty = 0.5f;
  params[0].temperature = 1.3f;
  for (int r = 1; r < 6; ++r) {
    params[r].temperature = 0.5f + 0.2f * r;
    params[r].top_k = 10 * r;
    if (r % 2 == 0) params[r].seed = 100 + r;  // a mix of seeded and unseeded neighbours
  }
  const std::vector<std::vector<int32_t>> alone = Generate({params[0]}, {0}, 40, 1);
  const auto batched = Generate(params, {3, 1, 0, 5, 2, 4}, 40, 2);
  const auto reordered = Generate(params, {5, 4, 3, 2, 1, 0}, 40, 3);
  EXPECT_EQ(batched[0], alone[0]);
  EXPECT_EQ(reordered[0], alone[0]);
  EXPECT_EQ(batched[2], reordered[2]);  // seeded neighbours too
  EXPECT_EQ(batched[4], reordered[4]);
  // Outputs are genuinely random: another seed gives another sequence.
  params[0].seed = 2025;
  EXPECT_NE(Generate({params[0]}, {0}, 40, 1)[0], alone[0]);
}

// Pearson chi-square of `counts` against probabilities `probs` (zero-probability ids must have
// zero counts, checked separately).
double ChiSquare(const std::vector<int>& counts, const std::vector<double>& probs, int draws) {
  double chi2 = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0.0) continue;
    const double expected = probs[i] * draws;
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi2;
}

struct Case {
  const char* name;
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  std::vector<bool> kept;  // which ids may be sampled
};

TEST(SamplerTest, SamplingMatchesTheFilteredSoftmax) {
  // Raw logits of 8 tokens; softmax(l / T) restricted to the kept ids is the target distribution.
  const std::vector<float> logits = {1.0f, 2.2f, 0.3f, 2.0f, -1.0f, 1.5f, 0.9f, -0.2f};
  // Order by logit: 1, 3, 5, 0, 6, 2, 7, 4.
  const std::vector<Case> cases = {
      {"temperature 1", 1.0f, 0, 1.0f, 0.0f, {1, 1, 1, 1, 1, 1, 1, 1}},
      {"temperature 0.6", 0.6f, 0, 1.0f, 0.0f, {1, 1, 1, 1, 1, 1, 1, 1}},
      {"temperature 2.5", 2.5f, 0, 1.0f, 0.0f, {1, 1, 1, 1, 1, 1, 1, 1}},
      {"top_k 3", 1.0f, 3, 1.0f, 0.0f, {0, 1, 0, 1, 0, 1, 0, 0}},
      // T = 1 probabilities in that order: .315 .258 .157 .095 .086 .047 .029 .013; cumulative
      // .315 .573 .730 .825: top_p 0.75 keeps four tokens.
      {"top_p 0.75", 1.0f, 0, 0.75f, 0.0f, {1, 1, 0, 1, 0, 1, 0, 0}},
      {"top_k 5 top_p 0.8", 0.8f, 5, 0.8f, 0.0f, {0, 1, 0, 1, 0, 1, 0, 0}},
      {"min_p 0.25", 1.0f, 0, 1.0f, 0.25f, {1, 1, 0, 1, 0, 1, 1, 0}},
  };
  constexpr int kDraws = 40000;
  // 99.9% quantiles of chi-square with 1..7 degrees of freedom.
  const double kCritical[8] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Sampler sampler = MakeSampler(8);
    SamplingParams p;
    p.temperature = c.temperature;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    std::vector<double> probs(8, 0.0);
    double z = 0.0;
    int kept = 0;
    for (int i = 0; i < 8; ++i) {
      if (!c.kept[i]) continue;
      probs[i] = std::exp(static_cast<double>(logits[i]) / c.temperature);
      z += probs[i];
      ++kept;
    }
    for (double& q : probs) q /= z;
    std::vector<int> counts(8, 0);
    for (int d = 0; d < kDraws; ++d) {
      // Draw counters differ by seed here; within a request they differ by step.
      const SampleResult r = SampleOne(sampler, logits, p, {}, {}, /*seed=*/d);
      ASSERT_TRUE(r.status.ok());
      ++counts[r.token_id];
    }
    for (int i = 0; i < 8; ++i) {
      if (!c.kept[i]) {
        EXPECT_EQ(counts[i], 0) << "excluded token " << i << " was sampled";
      }
    }
    EXPECT_LT(ChiSquare(counts, probs, kDraws), kCritical[kept - 1]);
  }
}

TEST(SamplerTest, StepCounterAdvancesTheDraws) {
  // One request with a fixed distribution over many steps: draws differ step to step and follow
  // the softmax.
  Sampler sampler = MakeSampler(4);
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, 0.5f};
  SamplingParams p;
  std::vector<int32_t> output;
  std::vector<int> counts(4, 0);
  constexpr int kSteps = 20000;
  for (int step = 0; step < kSteps; ++step) {
    const SampleResult r = SampleOne(sampler, logits, p, output, {}, 31337);
    ++counts[r.token_id];
    output.push_back(r.token_id);
  }
  std::vector<double> probs(4);
  double z = 0.0;
  for (int i = 0; i < 4; ++i) z += probs[i] = std::exp(logits[i]);
  for (double& q : probs) q /= z;
  EXPECT_LT(ChiSquare(counts, probs, kSteps), 16.27);
}

}  // namespace
}  // namespace moeserve

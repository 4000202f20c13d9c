// SamplingParams::prompt_logprobs through the engine: for every prompt position p >= 1 the logprob
// of the prompt token under log_softmax(logits after tokens [0, p)), plus the top alternatives,
// equal to a full forward of the whole prompt through the model, whatever the prefill chunking;
// the prefix cache is not read for such requests; preemption and parallel sampling deliver them
// once, on sample 0's first delta.

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "tests/engine/engine_test_util.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"

namespace moeserve::testing {
namespace {

constexpr double kTolerance = 1e-4;

// chunk: long_prefill_token_threshold, the most prompt tokens a step computes (0: no limit).
EngineConfig Config(int32_t chunk = 0) {
  EngineConfig c;
  c.block_size = 4;
  c.num_kv_blocks = 256;
  c.max_num_batched_tokens = 256;
  c.max_num_seqs = 16;
  c.max_model_len = 64;
  c.check_integrity_every_step = true;
  c.long_prefill_token_threshold = chunk;
  return c;
}

std::vector<int32_t> Prompt(int n, int salt = 0) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = 3 + (i * 37 + salt * 11) % 250;
  return v;
}

// log_softmax rows of a full forward over the whole prompt: row q is the distribution after
// tokens [0, q].
std::vector<std::vector<double>> ReferenceLogprobs(const std::string& model, const std::vector<int32_t>& ids) {
  LoadedModel loaded((FixturesDir() / "models" / model).string(), /*num_blocks=*/32, /*block_size=*/4);
  EXPECT_TRUE(loaded.ok());
  if (!loaded.ok()) return {};
  ForwardBatch batch{.block_size = 4};
  std::vector<int32_t> table;
  for (int32_t b = 0; b * 4 < static_cast<int32_t>(ids.size()); ++b) table.push_back(b + 1);
  batch.AddSequence(ids, 0, table, false);
  for (size_t i = 0; i < ids.size(); ++i) batch.logits_indices.push_back(static_cast<int32_t>(i));
  const std::vector<float> logits = loaded.Run(batch);
  const int64_t vocab = loaded.vocab();
  std::vector<std::vector<double>> out;
  for (size_t r = 0; r < ids.size(); ++r) {
    const float* row = logits.data() + r * vocab;
    const double max = *std::max_element(row, row + vocab);
    double sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - max);
    std::vector<double> lp(vocab);
    for (int64_t v = 0; v < vocab; ++v) lp[v] = row[v] - max - std::log(sum);
    out.push_back(std::move(lp));
  }
  return out;
}

// `got` (positions 1..P-1) against the reference, with `num_top` alternatives each.
void ExpectMatchesReference(const std::vector<TokenLogprobs>& got, const std::vector<int32_t>& ids,
                            const std::vector<std::vector<double>>& ref, int32_t num_top, const std::string& what) {
  ASSERT_EQ(got.size(), ids.size() - 1) << what;
  for (size_t p = 1; p < ids.size(); ++p) {
    const TokenLogprobs& e = got[p - 1];
    const std::vector<double>& want = ref[p - 1];
    EXPECT_EQ(e.token_id, ids[p]) << what << " position " << p;
    EXPECT_NEAR(e.logprob, want[ids[p]], kTolerance) << what << " position " << p;
    ASSERT_EQ(static_cast<int32_t>(e.top.size()), num_top) << what << " position " << p;
    std::vector<double> sorted = want;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    for (size_t k = 0; k < e.top.size(); ++k) {
      EXPECT_NEAR(e.top[k].logprob, want[e.top[k].token_id], kTolerance) << what << " position " << p;
      EXPECT_NEAR(e.top[k].logprob, sorted[k], kTolerance) << what << " position " << p << " rank " << k;
    }
  }
}

// Runs the requests to the end, returning every delta of each (not merged). The last request is
// added after `last_after_steps` steps.
std::vector<std::vector<RequestOutput>> RunDeltas(Engine& engine, std::vector<EngineRequest> requests,
                                                  int last_after_steps = 0) {
  auto deltas = std::make_shared<std::vector<std::vector<RequestOutput>>>(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].on_output = [deltas, i](RequestOutput out) { (*deltas)[i].push_back(std::move(out)); };
    if (i + 1 == requests.size()) {
      for (int k = 0; k < last_after_steps; ++k) {
        EXPECT_TRUE(engine.Step());
        EXPECT_TRUE(engine.CheckIntegrity().ok());
      }
    }
    auto stream = engine.AddRequest(std::move(requests[i]));
    EXPECT_TRUE(stream.ok()) << stream.status();
  }
  RunChecked(engine);
  return *deltas;
}

// The prompt logprobs of one request's deltas; fails unless exactly one delta (sample 0's first,
// holding its first token) carries them.
std::vector<TokenLogprobs> PromptLogprobsOf(const std::vector<RequestOutput>& deltas) {
  std::vector<TokenLogprobs> out;
  int carrying = 0;
  bool seen_sample0_token = false;
  for (const RequestOutput& d : deltas) {
    if (!d.prompt_logprobs.empty()) {
      ++carrying;
      EXPECT_EQ(d.index, 0);
      EXPECT_FALSE(seen_sample0_token) << "prompt logprobs after sample 0's first token";
      EXPECT_FALSE(d.token_ids.empty());
      out = d.prompt_logprobs;
    }
    if (d.index == 0 && !d.token_ids.empty()) seen_sample0_token = true;
  }
  EXPECT_LE(carrying, 1) << "prompt logprobs delivered more than once";
  return out;
}

EngineRequest WithPromptLogprobs(std::vector<int32_t> ids, int32_t num_top, int32_t max_tokens = 3) {
  EngineRequest r;
  r.prompt_token_ids = std::move(ids);
  r.sampling = Greedy(max_tokens);
  r.sampling.prompt_logprobs = num_top;
  return r;
}

TEST(PromptLogprobsTest, MatchFullForwardAtEveryChunkSize) {
  const std::vector<int32_t> ids = Prompt(13);
  const auto ref = ReferenceLogprobs("llama", ids);
  ASSERT_EQ(ref.size(), ids.size());
  for (int32_t chunk : {0, 1, 3, 4, 12}) {  // 0: whole prompt; 4: the block size; 12: prompt - 1
    auto engine = MakeFixtureEngine("llama", Config(chunk));
    ASSERT_NE(engine, nullptr);
    const auto deltas = RunDeltas(*engine, {WithPromptLogprobs(ids, 5), WithPromptLogprobs(ids, 0),
                                            EngineRequest{.prompt_token_ids = ids, .sampling = Greedy(3)}});
    const std::string what = "chunk " + std::to_string(chunk);
    ExpectMatchesReference(PromptLogprobsOf(deltas[0]), ids, ref, 5, what + " top 5");
    ExpectMatchesReference(PromptLogprobsOf(deltas[1]), ids, ref, 0, what + " top 0");
    EXPECT_TRUE(PromptLogprobsOf(deltas[2]).empty()) << what << ": not asked for";
  }
}

TEST(PromptLogprobsTest, MlaModelMatchesFullForward) {
  const std::vector<int32_t> ids = Prompt(10, 1);
  const auto ref = ReferenceLogprobs("deepseek_v3", ids);
  auto engine = MakeFixtureEngine("deepseek_v3", Config(/*chunk=*/3));
  ASSERT_NE(engine, nullptr);
  const auto deltas = RunDeltas(*engine, {WithPromptLogprobs(ids, 2)});
  ExpectMatchesReference(PromptLogprobsOf(deltas[0]), ids, ref, 2, "deepseek_v3");
}

TEST(PromptLogprobsTest, OneTokenPromptHasNone) {
  auto engine = MakeFixtureEngine("llama", Config());
  const auto deltas = RunDeltas(*engine, {WithPromptLogprobs({7}, 3)});
  ASSERT_FALSE(deltas[0].empty());
  EXPECT_TRUE(PromptLogprobsOf(deltas[0]).empty());
  EXPECT_EQ(deltas[0].back().finish_reason, FinishReason::kLength);
}

TEST(PromptLogprobsTest, CachedPrefixIsNotReadButStillWritten) {
  const std::vector<int32_t> ids = Prompt(17, 2);
  const auto ref = ReferenceLogprobs("llama", ids);
  auto engine = MakeFixtureEngine("llama", Config());
  ASSERT_NE(engine, nullptr);
  // The prompt's 4 full blocks go into the prefix cache.
  const auto warm = RunDeltas(*engine, {EngineRequest{.prompt_token_ids = ids, .sampling = Greedy(2)}});
  ASSERT_FALSE(warm[0].empty());
  std::vector<TokenLogprobs> first;
  for (int round = 0; round < 2; ++round) {
    const auto deltas = RunDeltas(*engine, {WithPromptLogprobs(ids, 4)});
    ASSERT_FALSE(deltas[0].empty());
    EXPECT_EQ(deltas[0].back().usage.cached_tokens, 0) << "round " << round;
    const std::vector<TokenLogprobs> got = PromptLogprobsOf(deltas[0]);
    ExpectMatchesReference(got, ids, ref, 4, "round " + std::to_string(round));
    if (round == 0) {
      first = got;
    } else {
      ASSERT_EQ(got.size(), first.size());
      for (size_t k = 0; k < got.size(); ++k) {
        EXPECT_EQ(got[k].logprob, first[k].logprob) << k;
        EXPECT_EQ(got[k].top, first[k].top) << k;
      }
    }
  }
  // A request without prompt logprobs still hits the cache.
  const auto after = RunDeltas(*engine, {EngineRequest{.prompt_token_ids = ids, .sampling = Greedy(2)}});
  EXPECT_EQ(after[0].back().usage.cached_tokens, 16);
}

TEST(PromptLogprobsTest, PreemptedRequestDeliversThemOnce) {
  EngineConfig c = Config(/*chunk=*/4);
  c.num_kv_blocks = 12;  // 11 usable blocks of 4: 44 tokens
  c.max_model_len = 40;
  const std::vector<int32_t> ids = Prompt(16, 3);
  const auto ref = ReferenceLogprobs("llama", ids);
  // The older request's growth preempts the newer one (lower priority): {older prompt, older
  // max_tokens, newer max_tokens, steps before the newer arrives}. First: during the newer one's
  // chunked prefill (the older has computed its prompt, 8 blocks, and decodes); second: after its
  // first token, while both decode.
  struct Case {
    int older_prompt, older_max, newer_max, newer_after_steps;
  };
  for (const Case& k : {Case{30, 8, 4, 8}, Case{8, 30, 20, 0}}) {
    const std::string what = "older prompt " + std::to_string(k.older_prompt);
    auto engine = MakeFixtureEngine("llama", c);
    ASSERT_NE(engine, nullptr);
    EngineRequest older{.prompt_token_ids = Prompt(k.older_prompt, 4), .sampling = Greedy(k.older_max)};
    EngineRequest newer = WithPromptLogprobs(ids, 3, k.newer_max);
    newer.priority = 1;
    const auto deltas = RunDeltas(*engine, {older, newer}, k.newer_after_steps);
    ASSERT_FALSE(deltas[1].empty()) << what;
    EXPECT_GT(deltas[1].back().usage.num_preemptions, 0) << what;
    EXPECT_EQ(deltas[1].back().finish_reason, FinishReason::kLength) << what;
    ExpectMatchesReference(PromptLogprobsOf(deltas[1]), ids, ref, 3, what);
  }
}

TEST(PromptLogprobsTest, ParallelSamplesDeliverThemOnceOnSampleZero) {
  const std::vector<int32_t> ids = Prompt(14, 5);
  const auto ref = ReferenceLogprobs("llama", ids);
  auto engine = MakeFixtureEngine("llama", Config(/*chunk=*/5));
  ASSERT_NE(engine, nullptr);
  EngineRequest r = WithPromptLogprobs(ids, 2, 4);
  r.sampling.n = 2;
  const auto deltas = RunDeltas(*engine, {r});
  int finished = 0;
  for (const RequestOutput& d : deltas[0]) finished += d.finished ? 1 : 0;
  EXPECT_EQ(finished, 2);
  ExpectMatchesReference(PromptLogprobsOf(deltas[0]), ids, ref, 2, "n=2");
}

}  // namespace
}  // namespace moeserve::testing

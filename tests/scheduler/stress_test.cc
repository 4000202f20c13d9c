// Randomized stress: thousands of steps of random arrivals (with shared prefixes and salts),
// priorities, lengths, stop ids, aborts at random points (including while a step is in flight),
// admission refusals and preemptions under a small KV pool, and parallel-sampling groups (children
// forked from a parent, aborted alone or together). Integrity is checked after every
// Schedule() and UpdateFromOutput(); every request that finished on its own must have produced
// exactly what it produces alone, and an aborted one a prefix of that.

#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "server/scheduler/scheduler.h"
#include "tests/scheduler/fake_model.h"

namespace moeserve {
namespace {

using ::moeserve::testing::Harness;
using ::moeserve::testing::ReferenceOutput;

struct StressParams {
  uint32_t seed;
  int32_t block_size;
  int32_t num_blocks;
  int32_t budget;
  int32_t max_seqs;
  int32_t max_model_len;
  int32_t long_prefill_threshold;
  int32_t max_queued_requests;
  bool prefix_caching;
  int steps;
  int32_t max_drafts = 0;  // > 0: speculative decoding with up to this many drafts per step
  int32_t lookahead = 0;   // SchedulerConfig::num_lookahead_tokens
};

// The output of `spec` run alone through a fresh scheduler with a roomy cache.
std::vector<int32_t> RunAlone(const RequestSpec& spec, const StressParams& p) {
  SchedulerConfig config;
  config.max_num_batched_tokens = 4096;
  config.max_num_seqs = 1;
  config.max_model_len = p.max_model_len;
  Harness alone(config, KvCacheConfig{p.max_model_len / p.block_size + 8, p.block_size, true});
  RequestSpec solo = spec;
  solo.fork_parent.reset();
  EXPECT_TRUE(alone.scheduler().AddRequest(solo).ok());
  alone.RunToCompletion();
  return alone.outputs()[spec.id];
}

class StressTest : public ::testing::TestWithParam<StressParams> {};

TEST_P(StressTest, RandomWorkloadKeepsIntegrityAndMatchesRunningAlone) {
  const StressParams p = GetParam();
  std::mt19937 rng(p.seed);
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&rng](double q) { return std::bernoulli_distribution(q)(rng); };

  SchedulerConfig config;
  config.max_num_batched_tokens = p.budget;
  config.max_num_seqs = p.max_seqs;
  config.max_model_len = p.max_model_len;
  config.long_prefill_token_threshold = p.long_prefill_threshold;
  config.max_queued_requests = p.max_queued_requests;
  config.num_lookahead_tokens = p.lookahead;
  Harness h(config, KvCacheConfig{p.num_blocks, p.block_size, p.prefix_caching});

  // A few shared prefixes so that prefix hits, shared blocks and evictions happen.
  std::vector<std::vector<int32_t>> prefixes;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> prefix(uniform(1, 3 * p.block_size));
    for (int32_t& t : prefix) t = uniform(1, 63);
    prefixes.push_back(prefix);
  }

  std::map<RequestId, RequestSpec> specs;
  std::map<RequestId, bool> aborted;
  std::vector<RequestId> live;
  RequestId next_id = 1;
  int refused = 0;
  int preemptions = 0;
  int prefix_hits = 0;
  int children = 0;
  int forked_admissions = 0;
  std::map<RequestId, std::vector<RequestId>> groups;  // parent -> forked children
  if (p.max_drafts > 0) {
    // Drafts from an oracle that is right 70% of the time per token.
    h.SetDrafter([&](const Request& r) {
      const std::vector<int32_t> expected = ReferenceOutput(specs.at(r.id()), h.vocab_size(), p.max_model_len);
      std::vector<int32_t> drafts;
      for (int32_t j = 0, n = uniform(0, p.max_drafts); j < n; ++j) {
        const size_t at = static_cast<size_t>(r.num_output_tokens() + j);
        drafts.push_back(at < expected.size() && chance(0.7) ? expected[at] : uniform(0, 63));
      }
      return drafts;
    });
  }

  auto abort_random = [&]() {
    if (live.empty()) return;
    const size_t k = uniform(0, static_cast<int>(live.size()) - 1);
    const RequestId id = live[k];
    if (h.scheduler().Abort(id)) aborted[id] = true;
    // Aborting a parallel-sampling request aborts all its samples (as the engine does).
    if (groups.count(id) && chance(0.5)) {
      for (RequestId child : groups[id]) {
        if (h.scheduler().Abort(child)) aborted[child] = true;
      }
    }
  };

  for (int step = 0; step < p.steps; ++step) {
    const bool draining = step >= p.steps - 400;  // let the tail finish
    if (!draining) {
      for (int n = uniform(0, 2); n > 0; --n) {
        RequestSpec spec;
        spec.id = next_id++;
        if (chance(0.6)) spec.prompt_token_ids = prefixes[uniform(0, 3)];
        for (int extra = uniform(chance(0.5) ? 0 : 1, 2 * p.block_size + 3); extra > 0; --extra) {
          spec.prompt_token_ids.push_back(uniform(1, 63));
        }
        if (spec.prompt_token_ids.empty()) spec.prompt_token_ids.push_back(uniform(1, 63));
        if (static_cast<int32_t>(spec.prompt_token_ids.size()) > p.max_model_len) {
          spec.prompt_token_ids.resize(p.max_model_len);
        }
        spec.max_tokens = uniform(1, 24);
        spec.priority = uniform(0, 2);
        if (chance(0.2)) spec.cache_salt = "tenant";
        if (chance(0.5)) spec.eos_token_ids.push_back(uniform(0, 63));
        if (chance(0.2)) spec.stop_token_ids.push_back(uniform(0, 63));
        spec.ignore_eos = chance(0.2);
        spec.min_tokens = chance(0.2) ? uniform(0, spec.max_tokens) : 0;
        const absl::Status status = h.Add(spec);
        if (status.ok()) {
          specs[spec.id] = spec;
          live.push_back(spec.id);
        } else {
          ASSERT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
          ++refused;
          continue;
        }
        // Parallel sampling: children forked from this request share its prompt blocks.
        if (chance(0.25)) {
          const RequestId parent = spec.id;
          for (int k = uniform(1, 3); k > 0; --k) {
            RequestSpec child = spec;
            child.id = next_id++;
            child.fork_parent = parent;
            const absl::Status forked = h.Add(child);
            if (!forked.ok()) {
              ASSERT_EQ(forked.code(), absl::StatusCode::kResourceExhausted) << forked;
              ++refused;
              continue;
            }
            specs[child.id] = child;
            groups[parent].push_back(child.id);
            live.push_back(child.id);
            ++children;
          }
        }
      }
      if (chance(0.05)) abort_random();
    }

    const SchedulerOutput& out = h.Begin();
    preemptions += static_cast<int>(out.preempted_request_ids.size());
    for (const ScheduledRequest& s : out.scheduled) {
      const Request* r = h.scheduler().GetRequest(s.id);
      if (s.start_position > 0 && r->num_preemptions() == 0 && s.start_position == r->num_cached_prompt_tokens() &&
          r->num_output_tokens() == 0) {
        ++prefix_hits;
      }
      if (s.start_position > 0 && r->num_preemptions() == 0 && r->num_output_tokens() == 0 &&
          r->num_cached_prompt_tokens() == 0 && r->spec().fork_parent.has_value()) {
        ++forked_admissions;  // shares its parent's prompt blocks
      }
    }
    for (RequestId id : out.finished_request_ids) {
      live.erase(std::find(live.begin(), live.end(), id));
      ASSERT_EQ(h.scheduler().GetRequest(id), nullptr);
    }
    if (!draining && chance(0.03)) abort_random();  // while the step is in flight
    h.Finish();
  }
  h.RunToCompletion();
  EXPECT_EQ(h.kv().usage().num_used_blocks, 0);

  int finished_alone = 0;
  int checked_alone = 0;
  for (const auto& [id, spec] : specs) {
    const std::vector<int32_t> expected = ReferenceOutput(spec, h.vocab_size(), p.max_model_len);
    const std::vector<int32_t>& got = h.outputs()[id];
    if (aborted.count(id)) {
      ASSERT_LE(got.size(), expected.size()) << "request " << id;
      ASSERT_TRUE(std::equal(got.begin(), got.end(), expected.begin())) << "request " << id;
      continue;
    }
    ASSERT_EQ(got, expected) << "request " << id;
    ++finished_alone;
    if (id % 5 == 0) {  // the literal check, through a scheduler of its own, on a sample
      ASSERT_EQ(got, RunAlone(spec, p)) << "request " << id;
      ++checked_alone;
    }
  }
  RecordProperty("requests", static_cast<int>(specs.size()));
  RecordProperty("preemptions", preemptions);
  std::printf(
      "seed %u: %zu requests (%d refused, %zu aborted, %d compared alone), %d preemptions, "
      "%d prefix-hit admissions, prefix hit tokens %lld, %d forked children (%d admitted on a fork)\n",
      p.seed, specs.size(), refused, aborted.size(), checked_alone, preemptions, prefix_hits,
      static_cast<long long>(h.kv().usage().prefix_hit_tokens), children, forked_admissions);
  EXPECT_GT(finished_alone, 0);
  EXPECT_GT(children, 0);
  EXPECT_GT(forked_admissions, 0);
  if (p.num_blocks * p.block_size < 4 * p.max_model_len) {
    EXPECT_GT(preemptions, 0);
  }
  if (p.prefix_caching) {
    EXPECT_GT(h.kv().usage().prefix_hit_tokens, 0);
  }
  if (p.max_drafts > 0) {
    std::printf("seed %u: %lld drafts scheduled, %lld accepted\n", p.seed, static_cast<long long>(h.drafts_scheduled()),
                static_cast<long long>(h.drafts_accepted()));
    EXPECT_GT(h.drafts_accepted(), 0);
    EXPECT_LT(h.drafts_accepted(), h.drafts_scheduled());
  }
}

INSTANTIATE_TEST_SUITE_P(Workloads, StressTest,
                         ::testing::Values(
                             // seed, block, blocks, budget, seqs, max_len, prefill cap, max queued, caching, steps
                             StressParams{1, 4, 33, 32, 8, 96, 0, 0, true, 10000},
                             StressParams{2, 16, 9, 64, 16, 128, 16, 0, true, 3000},
                             StressParams{3, 1, 70, 16, 6, 64, 5, 12, true, 3000},
                             StressParams{4, 8, 20, 24, 24, 80, 0, 0, false, 3000},
                             StressParams{5, 4, 200, 48, 12, 96, 0, 20, true, 3000},
                             // Speculative decoding: drafts, lookahead slots, rollback under preemption.
                             StressParams{6, 4, 33, 32, 8, 96, 0, 0, true, 3000, 4, 3},
                             StressParams{7, 1, 80, 16, 6, 64, 5, 12, true, 2000, 3, 0},
                             StressParams{8, 8, 24, 24, 24, 80, 0, 0, false, 2000, 2, 1}));

}  // namespace
}  // namespace moeserve

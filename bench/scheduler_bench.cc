// moeserve-scheduler-bench: CPU time of one engine step's bookkeeping with no model math —
// Scheduler::Schedule (KV block allocation, prefix hashing of filled blocks), building the
// ForwardBatch the model would get (ForwardBatchBuilder, as the ModelRunner does), and
// UpdateFromOutput — at N
// running sequences decoding at a given context length. See docs/PERF.md.
//
//   moeserve-scheduler-bench [--seqs 256] [--context 4096] [--steps 2000]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "CLI/CLI.hpp"
#include "server/kv/kv_cache_manager.h"
#include "server/runner/forward_batch_builder.h"
#include "server/scheduler/scheduler.h"

namespace moeserve {
namespace {

struct Options {
  int seqs = 256;
  int context = 4096;
  int steps = 2000;
  int block_size = 16;
};

int Run(const Options& o) {
  const int blocks_per_seq = (o.context + o.steps + o.block_size) / o.block_size + 1;
  auto kv = KvCacheManager::Create({.num_blocks = o.seqs * blocks_per_seq + 2, .block_size = o.block_size});
  if (!kv.ok()) return std::fprintf(stderr, "%s\n", std::string(kv.status().message()).c_str()), 1;
  auto scheduler = Scheduler::Create(
      {.max_num_batched_tokens = 16384, .max_num_seqs = o.seqs, .max_model_len = o.context + o.steps + 16}, kv->get());
  if (!scheduler.ok()) return std::fprintf(stderr, "%s\n", std::string(scheduler.status().message()).c_str()), 1;

  for (int s = 0; s < o.seqs; ++s) {
    std::vector<int32_t> prompt(o.context);
    for (int i = 0; i < o.context; ++i) prompt[i] = (s * 7919 + i * 31) % 32000;  // distinct prompts
    absl::Status st = (*scheduler)
                          ->AddRequest({.id = static_cast<RequestId>(s + 1),
                                        .prompt_token_ids = std::move(prompt),
                                        .max_tokens = o.steps + 64,
                                        .ignore_eos = true});
    if (!st.ok()) return std::fprintf(stderr, "%s\n", std::string(st.message()).c_str()), 1;
  }
  // Prefill everything (not timed), until every sequence decodes one token per step.
  std::vector<int32_t> sampled;
  for (;;) {
    SchedulerOutput out = (*scheduler)->Schedule();
    sampled.assign(out.scheduled.size(), 7);
    const bool all_decoding = static_cast<int>(out.scheduled.size()) == o.seqs &&
                              std::all_of(out.scheduled.begin(), out.scheduled.end(),
                                          [](const ScheduledRequest& r) { return r.num_new_tokens == 1; });
    (*scheduler)->UpdateFromOutput(sampled);
    if (all_decoding) break;
  }

  ForwardBatchBuilder builder(KvLayout{.block_size = o.block_size});
  std::vector<double> micros;
  micros.reserve(o.steps);
  size_t batch_tokens = 0;
  for (int step = 0; step < o.steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    SchedulerOutput out = (*scheduler)->Schedule();
    const ForwardBatch& batch = builder.Build(out);
    sampled.assign(out.scheduled.size(), 11 + step % 100);
    (*scheduler)->UpdateFromOutput(sampled);
    const auto t1 = std::chrono::steady_clock::now();
    batch_tokens += batch.token_ids.size();
    micros.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(micros.begin(), micros.end());
  auto pct = [&](double p) { return micros[static_cast<size_t>(p * (micros.size() - 1))]; };
  std::printf("seqs %d, context %d, block size %d, steps %d (%.1f tokens per step)\n", o.seqs, o.context, o.block_size,
              o.steps, static_cast<double>(batch_tokens) / o.steps);
  std::printf("%10s %10s %10s %10s\n", "median us", "p90 us", "p99 us", "max us");
  std::printf("%10.1f %10.1f %10.1f %10.1f\n", pct(0.5), pct(0.9), pct(0.99), micros.back());
  return 0;
}

}  // namespace
}  // namespace moeserve

int main(int argc, char** argv) {
  CLI::App app{"Scheduler + KV bookkeeping time per step, no model math"};
  moeserve::Options o;
  app.add_option("--seqs", o.seqs, "running sequences")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--context", o.context, "context length of each")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--steps", o.steps, "timed decode steps")->capture_default_str()->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  return moeserve::Run(o);
}

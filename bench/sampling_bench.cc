// moeserve-sampling-bench: time per 128k-vocabulary row of the host sampler, per configuration
// (best and median of runs).
//   build/bin/moeserve-sampling-bench [vocab]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "server/sampling/sampler.h"

namespace {

using moeserve::SamplingParams;

void Run(const char* name, moeserve::Sampler& sampler, const std::vector<float>& logits, const SamplingParams& p,
         const std::vector<int32_t>& prompt, const std::vector<int32_t>& output,
         const uint32_t* allowed_tokens = nullptr) {
  moeserve::SamplingRow row{logits, &p, prompt, output, 42};
  row.allowed_tokens = allowed_tokens;
  moeserve::SampleResult result;
  std::vector<double> us;
  for (int i = 0; i < 60; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    sampler.SampleRow(row, &result);
    const auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("%-34s best %7.1f us   median %7.1f us   token %d\n", name, us[0], us[us.size() / 2], result.token_id);
}

}  // namespace

int main(int argc, char** argv) {
  const int32_t vocab = argc > 1 ? std::atoi(argv[1]) : 128 * 1024;
  moeserve::SamplerOptions options;
  options.vocab_size = vocab;
  options.engine_seed = 1;
  moeserve::Sampler sampler(options);
  // LLM-like logits: a broad normal bulk and a few strong candidates.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.5f);
  std::vector<float> logits(vocab);
  for (float& l : logits) l = normal(rng);
  for (int i = 0; i < 20; ++i) logits[rng() % vocab] = 12.0f + i * 0.3f;
  std::vector<float> flat(vocab);
  for (float& l : flat) l = 0.01f * normal(rng);
  std::vector<int32_t> prompt(2000), output(500);
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % vocab);
  for (int32_t& t : output) t = static_cast<int32_t>(rng() % vocab);

  std::printf("vocab %d\n", vocab);
  SamplingParams p;
  p.temperature = 0.0f;
  Run("greedy", sampler, logits, p, {}, {});
  p.logprobs = 5;
  Run("greedy + 5 logprobs", sampler, logits, p, {}, {});
  p = SamplingParams{};
  Run("temperature 1", sampler, logits, p, {}, {});
  p.temperature = 0.7f;
  Run("temperature 0.7", sampler, logits, p, {}, {});
  p.top_k = 50;
  Run("top_k 50", sampler, logits, p, {}, {});
  p.top_k = 0;
  p.top_p = 0.9f;
  Run("top_p 0.9", sampler, logits, p, {}, {});
  p.top_p = 0.95f;
  p.top_k = 40;
  p.min_p = 0.05f;
  Run("top_k 40 top_p 0.95 min_p 0.05", sampler, logits, p, {}, {});
  p = SamplingParams{};
  p.top_p = 0.9f;
  p.repetition_penalty = 1.1f;
  p.frequency_penalty = 0.2f;
  p.presence_penalty = 0.2f;
  p.logprobs = 5;
  Run("top_p + penalties (2.5k) + logprobs", sampler, logits, p, prompt, output);
  p = SamplingParams{};
  p.top_p = 0.9f;
  Run("top_p 0.9, flat logits (worst)", sampler, flat, p, {}, {});
  p.top_p = 1.0f;
  p.top_k = 1000;
  Run("top_k 1000, flat logits", sampler, flat, p, {}, {});

  // Structured-output masks: scattered bits (a regex over a few characters allows thousands of
  // tokens all over the vocabulary) and a sparse one (a JSON position allowing a few dozen).
  std::vector<uint32_t> mixed((vocab + 31) / 32), sparse((vocab + 31) / 32);
  for (int32_t id = 0; id < vocab; ++id) {
    if (rng() % 4 == 0) mixed[id / 32] |= 1u << (id % 32);
  }
  for (int i = 0; i < 40; ++i) {
    const uint32_t id = rng() % vocab;
    sparse[id / 32] |= 1u << (id % 32);
  }
  p = SamplingParams{};
  Run("temperature 1, 25% mask", sampler, logits, p, {}, {}, mixed.data());
  Run("temperature 1, 40-token mask", sampler, logits, p, {}, {}, sparse.data());
  p.temperature = 0.0f;
  Run("greedy, 25% mask", sampler, logits, p, {}, {}, mixed.data());
  p = SamplingParams{};
  p.top_p = 0.9f;
  Run("top_p 0.9, 25% mask", sampler, logits, p, {}, {}, mixed.data());
  return 0;
}

// Sampling on the device vs the host Sampler (the reference) on identical bf16-rounded logits:
// greedy ids identical; seeded draws identical (well-separated distributions, 64 seeds per
// case); every device token inside the host's top-k/top-p/min-p support set; penalties and logit
// bias; structured-output masks (a different random mask per row, some words all ones: every
// device token allowed by its row's mask, same ids as the host's masked sampling); chosen-token
// and top-n logprobs within 1e-3 (same inputs; exp/log rounding only).

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/sampling/device_sampling.h"
#include "server/sampling/sampler.h"
#include "server/sampling/token_filter.h"
#include "tests/cuda/parity_harness.h"

namespace moeserve::parity {
namespace {

struct Case {
  std::string name;
  SamplingParams params;
  bool masked = false;  // each row gets its own structured-output mask
};

void RunCase(Harness& h, int32_t vocab, const Case& c) {
  const std::string name = absl::StrCat("Sample ", c.name, " V=", vocab);
  if (!h.Wanted(name)) return;
  constexpr int kRows = 64;  // one row per seed
  std::vector<float> logits = h.Rand(int64_t{kRows} * vocab, -8.0f, 8.0f);
  Tensor dev = Act(*h.gpu, logits, {kRows, vocab});
  std::vector<int32_t> prompt = {1, 5, 7, 7, 9}, output = {5, 11, 11, 3};
  for (int32_t& id : prompt) id %= vocab;
  for (int32_t& id : output) id %= vocab;
  Sampler host({.vocab_size = vocab, .eos_token_ids = {2}, .engine_seed = 1});
  const int32_t words = (vocab + 31) / 32;
  std::vector<uint32_t> masks;
  if (c.masked) {
    const std::vector<float> bits = h.Rand(int64_t{kRows} * words * 32, 0.0f, 1.0f);
    masks.assign(size_t(kRows) * words, 0u);
    for (int r = 0; r < kRows; ++r) {
      for (int32_t w = 0; w < words; ++w) {
        uint32_t& m = masks[size_t(r) * words + w];
        if ((w + r) % 7 == 0) {
          m = ~0u;  // a whole word allowed (the fast path)
          continue;
        }
        for (int b = 0; b < 32; ++b) {
          if (bits[(size_t(r) * words + w) * 32 + b] < 0.1f) m |= 1u << b;
        }
      }
      masks[size_t(r) * words] |= 1u;  // never empty
    }
  }
  std::vector<SamplingRow> rows;
  for (int r = 0; r < kRows; ++r) {
    rows.push_back({.params = &c.params,
                    .prompt_token_ids = prompt,
                    .output_token_ids = output,
                    .seed = 1000u + 7919u * r,
                    .allowed_tokens = c.masked ? &masks[size_t(r) * words] : nullptr});
  }
  std::vector<SampleResult> got;
  auto done = SampleOnDevice(h.gpu.get(), dev, rows, &got);
  PARITY_CHECK_OK(done.status());
  if (!*done) {
    std::printf("FAIL %s  device sampling declined the batch\n", name.c_str());
    ++h.failed;
    return;
  }
  int mismatches = 0, outside = 0, errors = 0;
  double max_lp = 0.0;
  TokenFilter filter(vocab);
  std::vector<float> x(vocab), w(vocab);
  for (int r = 0; r < kRows; ++r) {
    SampleResult want;
    const absl::Span<const float> row = absl::MakeConstSpan(logits).subspan(int64_t{r} * vocab, vocab);
    SamplingRow host_row = rows[r];
    host_row.logits = row;
    host.SampleRow(host_row, &want);
    if (!want.status.ok() || !got[r].status.ok()) {
      if (want.status.ok() != got[r].status.ok()) ++errors;
      continue;
    }
    if (want.token_id != got[r].token_id) ++mismatches;
    const uint32_t* mask = rows[r].allowed_tokens;
    if (mask != nullptr && ((mask[got[r].token_id >> 5] >> (got[r].token_id & 31)) & 1u) == 0) ++outside;
    // Support set: the device token must have a nonzero host weight.
    const SamplingParams& p = c.params;
    if (p.temperature >= kGreedyTemperature && got[r].token_id >= 0) {
      if (mask != nullptr) {
        CopyAllowedLogits(row, mask, absl::MakeSpan(x));
      } else {
        std::copy(row.begin(), row.end(), x.begin());
      }
      ApplyLogitBias(p.logit_bias, absl::MakeSpan(x));
      Penalties pen(vocab);
      (void)pen.Apply(p.repetition_penalty, p.presence_penalty, p.frequency_penalty, prompt, output, absl::MakeSpan(x));
      float mx = -INFINITY;
      for (float& v : x) v = p.temperature != 1.0f ? v / p.temperature : v;
      for (float v : x) mx = std::max(mx, v);
      filter.Apply(x, mx, p.top_k, p.top_p, p.min_p, absl::MakeSpan(w));
      if (!(w[got[r].token_id] > 0.0f)) ++outside;
    }
    if (p.logprobs.has_value()) {
      max_lp = std::max(max_lp, std::fabs(double(want.logprob) - got[r].logprob));
      if (want.top_logprobs.size() != got[r].top_logprobs.size()) {
        max_lp = INFINITY;
      } else {
        for (size_t j = 0; j < want.top_logprobs.size(); ++j) {
          if (want.top_logprobs[j].token_id != got[r].top_logprobs[j].token_id) max_lp = INFINITY;
          max_lp = std::max(max_lp, std::fabs(double(want.top_logprobs[j].logprob) - got[r].top_logprobs[j].logprob));
        }
      }
    }
  }
  const bool ok = mismatches == 0 && outside == 0 && errors == 0 && max_lp <= 1e-3;
  std::printf("%s %s  rows=%d id_mismatches=%d outside_support=%d status_mismatches=%d max_logprob_err=%.2g\n",
              ok ? "PASS" : "FAIL", name.c_str(), kRows, mismatches, outside, errors, max_lp);
  ok ? ++h.passed : ++h.failed;
}

}  // namespace

void SamplingCases(Harness& h) {
  std::vector<Case> cases;
  auto add = [&](std::string name, auto edit) {
    Case c{std::move(name), SamplingParams()};
    edit(c.params);
    cases.push_back(std::move(c));
  };
  add("greedy", [](SamplingParams& p) { p.temperature = 0.0f; });
  add("greedy+logprobs5", [](SamplingParams& p) {
    p.temperature = 0.0f;
    p.logprobs = 5;
  });
  add("seeded_t1", [](SamplingParams&) {});
  add("seeded_t0.7", [](SamplingParams& p) { p.temperature = 0.7f; });
  add("top_k40", [](SamplingParams& p) {
    p.top_k = 40;
    p.temperature = 0.8f;
  });
  add("top_p0.9", [](SamplingParams& p) { p.top_p = 0.9f; });
  add("min_p0.05", [](SamplingParams& p) { p.min_p = 0.05f; });
  add("top_k50+top_p0.8+min_p0.02", [](SamplingParams& p) {
    p.top_k = 50;
    p.top_p = 0.8f;
    p.min_p = 0.02f;
  });
  add("penalties+bias", [](SamplingParams& p) {
    p.repetition_penalty = 1.3f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.logit_bias = {{3, 5.0f}, {4, -100.0f}, {11, 2.5f}};
    p.temperature = 0.9f;
    p.logprobs = 3;
  });
  add("greedy+penalties", [](SamplingParams& p) {
    p.temperature = 0.0f;
    p.repetition_penalty = 1.5f;
    p.logit_bias = {{9, 30.0f}};
  });
  const size_t unmasked = cases.size();
  for (size_t i = 0; i < unmasked; ++i) {
    Case c = cases[i];
    c.name += "+mask";
    c.masked = true;
    cases.push_back(std::move(c));
  }
  for (int32_t vocab : {1000, 32000, 128256}) {
    for (const Case& c : cases) RunCase(h, vocab, c);
  }
}

}  // namespace moeserve::parity

// moeserve-structured-throughput: engine decode throughput with every row constrained vs none,
// side by side in one process (docs/PERF.md, issue 17's goal: >= 90% of unconstrained).
//
//   moeserve-structured-throughput --model DIR [--batch 64] [--tokens 64] [--rounds 3]
//                                  [--threads 0] [--regex PATTERN | --json-schema SCHEMA]
//
// Through the serving layer (serving::Frontend, which compiles the constraint once; later requests
// hit its cache). Each round runs `batch` requests of `tokens` output tokens (temperature 1,
// ignore_eos, so every request runs to `tokens`) twice, unconstrained and constrained (default: a
// regex of any length over 30 characters, so every step masks most of the vocabulary), and
// prints generated tokens/s of both and their ratio; the last line is the median ratio.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "server/serving/frontend.h"

namespace moeserve {
namespace {

struct Options {
  std::string model;
  int batch = 64;
  int tokens = 64;
  int rounds = 3;
  int threads = 0;
  std::string regex = "[a-z ,.]+";
  std::string json_schema;
};

// Generated tokens/s of one batch; -1 on error.
double RunBatch(serving::Frontend& frontend, const Options& o, const structured::Constraint& constraint,
                uint64_t seed) {
  std::vector<std::unique_ptr<serving::Call>> calls;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < o.batch; ++i) {
    serving::ServingRequest r;
    r.prompt = serving::TokenPrompt{{1, 2, 3, 4, 5, 6, 7, 8}};
    r.sampling.max_tokens = o.tokens;
    r.sampling.temperature = 1.0f;
    r.sampling.ignore_eos = true;
    r.sampling.seed = seed + i;
    r.sampling.constraint = constraint;
    auto call = frontend.Submit(std::move(r));
    if (!call.ok()) {
      std::fprintf(stderr, "%s\n", call.status().ToString().c_str());
      return -1;
    }
    calls.push_back(*std::move(call));
  }
  int64_t tokens = 0;
  for (auto& call : calls) {
    while (std::optional<serving::Output> out = call->Next(absl::InfiniteDuration())) {
      if (out->finish_reason == FinishReason::kError) {
        std::fprintf(stderr, "request failed: %s\n", out->error.ToString().c_str());
        return -1;
      }
      tokens += static_cast<int64_t>(out->token_ids.size());
      if (out->request_finished) break;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return tokens / seconds;
}

int Run(const Options& o) {
  EngineConfig c;
  c.model_dir = o.model;
  c.device = "cpu";
  c.num_threads = o.threads;
  c.max_num_seqs = std::max(o.batch, 1);
  c.max_num_batched_tokens = std::max(o.batch * 16, 256);
  c.max_model_len = 16 + o.tokens + 8;
  auto engine = Engine::Create(c);
  if (!engine.ok()) return std::fprintf(stderr, "%s\n", engine.status().ToString().c_str()), 1;
  (*engine)->Start();
  serving::Frontend frontend(engine->get(), {});
  structured::Constraint constraint;
  if (!o.json_schema.empty()) {
    constraint = {.kind = structured::Constraint::Kind::kJsonSchema, .value = o.json_schema};
  } else {
    constraint = {.kind = structured::Constraint::Kind::kRegex, .value = o.regex};
  }
  // Warm-up (also builds the vocabulary and compiles the constraint once).
  if (RunBatch(frontend, o, {}, 1) < 0 || RunBatch(frontend, o, constraint, 1) < 0) return 1;
  std::printf("%6s %14s %14s %8s\n", "round", "free_tok_s", "constr_tok_s", "ratio");
  std::vector<double> ratios;
  for (int r = 0; r < o.rounds; ++r) {
    const double free = RunBatch(frontend, o, {}, 100 + r * 1000);
    const double constrained = RunBatch(frontend, o, constraint, 100 + r * 1000);
    if (free < 0 || constrained < 0) return 1;
    ratios.push_back(constrained / free);
    std::printf("%6d %14.1f %14.1f %8.3f\n", r, free, constrained, constrained / free);
  }
  std::sort(ratios.begin(), ratios.end());
  std::printf("median ratio constrained/unconstrained at batch %d: %.3f\n", o.batch, ratios[ratios.size() / 2]);
  (*engine)->Stop();
  return 0;
}

}  // namespace
}  // namespace moeserve

int main(int argc, char** argv) {
  moeserve::Options o;
  CLI::App app{"Engine throughput with every row constrained vs unconstrained"};
  app.add_option("--model", o.model, "model directory (with tokenizer.json)")->required();
  app.add_option("--batch", o.batch, "concurrent requests")->capture_default_str();
  app.add_option("--tokens", o.tokens, "output tokens per request")->capture_default_str();
  app.add_option("--rounds", o.rounds, "measured rounds")->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0 = all)")->capture_default_str();
  app.add_option("--regex", o.regex, "the constraint")->capture_default_str();
  app.add_option("--json-schema", o.json_schema, "a JSON Schema constraint instead of the regex");
  CLI11_PARSE(app, argc, argv);
  return moeserve::Run(o);
}

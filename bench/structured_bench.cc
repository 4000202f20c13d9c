// moeserve-structured-bench: compile time and per-token mask time of structured-output
// constraints on a real tokenizer (docs/PERF.md; bench/structured/run.sh runs it beside xgrammar).
//
//   moeserve-structured-bench --tokenizer DIR --constraints FILE.jsonl [--walks 2] [--max-steps 200]
//                             [--seed 0] [--tokens-out walks.jsonl]
//
// FILE.jsonl: one constraint a line, {"name": ..., "kind": "json_schema" | "regex" | "grammar" |
// "json_object" | "tool_calls" | "triggered", "value": <schema or spec object, or text>,
// "any_whitespace": false, "prefer": <optional text>}. For each constraint: a cold compile (no
// cache), then `walks` random walks of at most `max-steps` tokens, each step timing
// FillNextTokenBitmask and then taking a uniformly random allowed token (a stop id, when allowed,
// with probability 1/2). Lines with "prefer" (triggered tool calls) stop with probability 1/128
// and, one step in 40, write "prefer"'s encoding token by token while it is allowed, so that walks
// open calls; their masks are also reported apart where EOS is allowed (free text) and elsewhere
// (inside calls). --tokens-out writes every walk's tokens, so that another
// library can replay the same sequences.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "nlohmann/json.hpp"
#include "server/structured/constraint_compiler.h"
#include "server/structured/matcher.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve::structured {
namespace {

using Clock = std::chrono::steady_clock;
// CPU time of this thread: the machine is shared, so wall time alone overstates compile cost.
double ThreadCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))];
}

struct Options {
  std::string tokenizer;
  std::string constraints;
  int walks = 2;
  int max_steps = 200;
  uint32_t seed = 0;
  std::string tokens_out;
};

int Run(const Options& o) {
  auto tokenizer = Tokenizer::FromDirectory(o.tokenizer);
  if (!tokenizer.ok()) return std::fprintf(stderr, "%s\n", tokenizer.status().ToString().c_str()), 1;
  std::vector<int32_t> stops;
  if ((*tokenizer)->eos_token_id().has_value()) stops.push_back(*(*tokenizer)->eos_token_id());
  const auto vocab_start = Clock::now();
  auto vocab = TokenVocabulary::FromTokenizer(**tokenizer, {.stop_ids = stops});
  if (!vocab.ok()) return std::fprintf(stderr, "%s\n", vocab.status().ToString().c_str()), 1;
  std::printf("vocabulary: %d tokens, %zu trie nodes, built in %.1f ms\n", (*vocab)->mask_size(),
              (*vocab)->trie().size(), Micros(Clock::now() - vocab_start) / 1000);
  std::ifstream in(o.constraints);
  if (!in) return std::fprintf(stderr, "cannot read %s\n", o.constraints.c_str()), 1;
  std::ofstream tokens_out;
  if (!o.tokens_out.empty()) tokens_out.open(o.tokens_out);
  std::mt19937 rng(o.seed);
  std::vector<double> all_masks, all_compiles, all_compile_cpu;
  std::vector<uint32_t> mask((*vocab)->mask_words());
  std::printf("%-28s %10s %8s %8s %8s %9s %9s %8s %9s %9s %9s\n", "constraint", "compile_ms", "cpu_ms", "states",
              "contexts", "uncertain", "mem_KiB", "steps", "mask_p50", "mask_p99", "accept_p50");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const nlohmann::ordered_json spec = nlohmann::ordered_json::parse(line);
    Constraint c;
    const std::string kind = spec.at("kind");
    c.kind = kind == "json_schema"  ? Constraint::Kind::kJsonSchema
             : kind == "regex"      ? Constraint::Kind::kRegex
             : kind == "grammar"    ? Constraint::Kind::kGrammar
             : kind == "tool_calls" ? Constraint::Kind::kToolCalls
             : kind == "triggered"  ? Constraint::Kind::kTriggered
                                    : Constraint::Kind::kJsonObject;
    // "prefer": text whose tokens a walk picks, when allowed, one step in 8 (to open tool calls).
    std::vector<int32_t> prefer;
    if (spec.contains("prefer")) {
      absl::StatusOr<std::vector<int32_t>> ids = (*tokenizer)->Encode(spec["prefer"].get<std::string>(), false);
      if (!ids.ok()) return std::fprintf(stderr, "%s\n", ids.status().ToString().c_str()), 1;
      prefer = *std::move(ids);
    }
    if (spec.contains("value"))
      c.value = spec["value"].is_string() ? spec["value"].get<std::string>() : spec["value"].dump();
    c.any_whitespace = spec.value("any_whitespace", false);
    const std::string name = spec.value("name", kind);
    const auto compile_start = Clock::now();
    const double cpu_start = ThreadCpuMs();
    absl::StatusOr<std::shared_ptr<const CompiledGrammar>> compiled = ConstraintCompiler(*vocab).Compile(c);
    const double compile_ms = Micros(Clock::now() - compile_start) / 1000;
    const double compile_cpu_ms = ThreadCpuMs() - cpu_start;
    if (!compiled.ok()) {
      std::printf("%-28s ERROR %s\n", name.c_str(), compiled.status().ToString().c_str());
      continue;
    }
    all_compiles.push_back(compile_ms);
    all_compile_cpu.push_back(compile_cpu_ms);
    std::vector<double> masks, accepts;
    std::vector<double> masks_at_end, masks_inside;  // "prefer" lines: where EOS is allowed or not
    for (int w = 0; w < o.walks; ++w) {
      GrammarMatcher m(*compiled);
      std::vector<int32_t> walk;
      size_t prefer_pos = 0;  // tokens of "prefer" written in a row
      for (int step = 0; step < o.max_steps && !m.IsTerminated(); ++step) {
        const auto t0 = Clock::now();
        m.FillNextTokenBitmask(mask.data());
        masks.push_back(Micros(Clock::now() - t0));
        if (!prefer.empty()) (m.CanEnd() ? masks_at_end : masks_inside).push_back(masks.back());
        std::vector<int32_t> allowed;
        bool stop_allowed = false;
        for (int32_t word = 0; word < static_cast<int32_t>(mask.size()); ++word) {
          for (uint32_t bits = mask[word]; bits != 0; bits &= bits - 1) {
            const int32_t id = word * 32 + __builtin_ctz(bits);
            if (std::binary_search(stops.begin(), stops.end(), id)) {
              stop_allowed = true;
            } else {
              allowed.push_back(id);
            }
          }
        }
        int32_t next;
        auto is_allowed = [&](int32_t id) { return (mask[id >> 5] >> (id & 31)) & 1u; };
        if (prefer_pos > 0 && prefer_pos < prefer.size() && is_allowed(prefer[prefer_pos])) {
          next = prefer[prefer_pos++];  // go on writing the preferred text
        } else if (!prefer.empty() && is_allowed(prefer[0]) && rng() % 40 == 0) {
          next = prefer[0];
          prefer_pos = 1;
        } else if (stop_allowed && (allowed.empty() || rng() % (prefer.empty() ? 2 : 128) == 0)) {
          next = stops[0];
        } else if (!allowed.empty()) {
          next = allowed[rng() % allowed.size()];
        } else {
          std::printf("%s: empty mask at step %d\n", name.c_str(), step);
          return 1;
        }
        const auto t1 = Clock::now();
        if (!m.AcceptToken(next)) {
          std::printf("%s: allowed token %d rejected\n", name.c_str(), next);
          return 1;
        }
        accepts.push_back(Micros(Clock::now() - t1));
        walk.push_back(next);
      }
      if (tokens_out.is_open()) {
        tokens_out << nlohmann::json{{"name", name}, {"walk", w}, {"tokens", walk}}.dump() << "\n";
      }
    }
    const TokenMaskCache& cache = (*compiled)->masks();
    std::printf("%-28s %10.1f %8.1f %8lld %8lld %9lld %9zu %8zu %9.1f %9.1f %9.1f\n", name.c_str(), compile_ms,
                compile_cpu_ms, static_cast<long long>(cache.num_states()),
                static_cast<long long>(cache.num_contexts()), static_cast<long long>(cache.num_uncertain()),
                (*compiled)->MemoryBytes() / 1024, masks.size(), Percentile(masks, 0.5), Percentile(masks, 0.99),
                Percentile(accepts, 0.5));
    if (!prefer.empty()) {
      std::printf(
          "  %s: where EOS is allowed (free text) %zu masks, p50 %.1f us, p99 %.1f us; elsewhere (inside "
          "calls) %zu masks, p50 %.1f us, p99 %.1f us\n",
          name.c_str(), masks_at_end.size(), Percentile(masks_at_end, 0.5), Percentile(masks_at_end, 0.99),
          masks_inside.size(), Percentile(masks_inside, 0.5), Percentile(masks_inside, 0.99));
    }
    all_masks.insert(all_masks.end(), masks.begin(), masks.end());
  }
  std::printf(
      "ALL: %zu constraints, compile median %.1f ms (CPU %.1f ms), p90 %.1f ms CPU, max %.1f ms CPU; %zu masks, "
      "median %.1f us, p99 %.1f us\n",
      all_compiles.size(), Percentile(all_compiles, 0.5), Percentile(all_compile_cpu, 0.5),
      Percentile(all_compile_cpu, 0.9), Percentile(all_compile_cpu, 1.0), all_masks.size(), Percentile(all_masks, 0.5),
      Percentile(all_masks, 0.99));
  return 0;
}

}  // namespace
}  // namespace moeserve::structured

int main(int argc, char** argv) {
  moeserve::structured::Options o;
  CLI::App app{"Structured-output compile and mask timing"};
  app.add_option("--tokenizer", o.tokenizer, "tokenizer directory (tokenizer.json)")->required();
  app.add_option("--constraints", o.constraints, "JSONL file of constraints")->required();
  // run.sh passes defaults first; a later value (its own arguments) wins.
  app.add_option("--walks", o.walks, "random walks per constraint")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--max-steps", o.max_steps, "tokens per walk at most")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--seed", o.seed, "random seed");
  app.add_option("--tokens-out", o.tokens_out, "write each walk's tokens (JSONL)");
  CLI11_PARSE(app, argc, argv);
  return moeserve::structured::Run(o);
}

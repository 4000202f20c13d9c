// moeserve-spec-bench: speculative decoding against plain decoding, side by side in one process.
//
// For each batch size, `--repeats` rounds each run the same greedy requests through a plain engine
// and a speculating one (same model, same backend options), alternating, and report the median of
// generated tokens per second of wall time (prefill included: prompts are short) and their ratio,
// with the drafts' acceptance. Prompt sets:
//   story   BOS + the opening of a story (the default model's own domain)
//   repeat  a passage, then the passage's first words again: the continuation repeats text the
//           prompt holds (n-gram lookup's case: edits, quotes, rewrites)
//   edit    real ShareGPT first turns that ask to rewrite, summarise, fix, edit or translate a text
//           (--prompt-file, the format vLLM's benchmark reads; default ../shared/data's), each
//           cut to its last --max-prompt-tokens tokens so that prompt and output fit the model
// `--force` turns the per-step auto-off off (every step speculates), to measure where
// speculation stops paying: the threshold behind --speculative-disable-batch-size.
//
//   moeserve-spec-bench --model models/default --method mtp --k 3 --batch 1,64
//   moeserve-spec-bench --model models/default --method ngram --k 3 --prompts repeat --batch 1

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "server/common/status_macros.h"
#include "server/engine/engine.h"

namespace moeserve {
namespace {

constexpr const char* kStories[] = {"Once upon a time", "The little dog",      "Lily and Ben went to the park",
                                    "One day, a bird",  "Tom was sad because", "The sun was shining",
                                    "Mom said",         "There was a big tree"};

constexpr const char* kPassages[] = {
    "Lily saw a big red ball in the park. She ran to the ball and kicked it. The ball went up high.",
    "Tom had a little boat. He put the boat in the water and it went far away. Tom was sad.",
    "The cat liked to sleep in the sun. One day the cat saw a bird and jumped up to play.",
    "Ben and Sue made a cake for mom. They put sugar and eggs in the bowl and mixed it well."};

struct Options {
  std::string model;
  std::string method = "mtp";
  int32_t k = 3;
  std::vector<int32_t> batches = {1, 64};
  int32_t max_tokens = 128;
  int32_t repeats = 3;
  std::string prompts = "story";
  std::string prompt_file = "../shared/data/prompts/sharegpt_v3_filtered_500.json";
  int32_t max_prompt_tokens = 256;
  bool force = false;
  int threads = 1;
};

// The first human turns of a ShareGPT file that ask for an edit of a text they hold.
absl::StatusOr<std::vector<std::string>> EditPrompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read --prompt-file ", path));
  const nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a ShareGPT JSON array"));
  const std::regex ask(
      R"(\b(rewrite|rephrase|paraphrase|summari[sz]e|fix|edit|correct|refactor|proofread|translate)\b)",
      std::regex::icase);
  std::vector<std::string> out;
  for (const nlohmann::json& item : doc) {
    const nlohmann::json* turns = item.contains("conversations") ? &item["conversations"] : nullptr;
    if (turns == nullptr || !turns->is_array() || turns->empty() || !(*turns)[0].contains("value")) continue;
    const nlohmann::json& value = (*turns)[0]["value"];
    if (!value.is_string()) continue;
    const std::string text = value.get<std::string>();
    if (std::regex_search(text.substr(0, 300), ask)) out.push_back(text);
  }
  if (out.empty()) return absl::NotFoundError(absl::StrCat(path, ": no edit/summarise prompts"));
  return out;
}

absl::StatusOr<std::vector<std::vector<int32_t>>> Prompts(const Tokenizer& tok, const Options& o, int32_t n) {
  const std::string& set = o.prompts;
  if (set == "edit") {
    ASSIGN_OR_RETURN(const std::vector<std::string> texts, EditPrompts(o.prompt_file));
    std::vector<std::vector<int32_t>> out;
    for (int32_t i = 0; i < n; ++i) {
      ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok.Encode(texts[i % texts.size()], /*add_special_tokens=*/true));
      if (static_cast<int32_t>(ids.size()) > o.max_prompt_tokens) {
        ids.erase(ids.begin(), ids.end() - o.max_prompt_tokens);
      }
      out.push_back(std::move(ids));
    }
    return out;
  }
  if (set != "story" && set != "repeat") {
    return absl::InvalidArgumentError(absl::StrCat("--prompts: story, repeat or edit, not ", set));
  }
  std::vector<std::vector<int32_t>> out;
  for (int32_t i = 0; i < n; ++i) {
    std::string text;
    if (set == "repeat") {
      const std::string p = kPassages[i % std::size(kPassages)];
      text = p + " " + p.substr(0, p.find(' ', p.find(' ') + 1));
    } else {
      text = kStories[i % std::size(kStories)];
    }
    out.push_back(*tok.Encode(text, /*add_special_tokens=*/true));
  }
  return out;
}

struct Run {
  double tokens_per_s = 0.0;
  int64_t drafts = 0;
  int64_t accepted = 0;
};

absl::StatusOr<Run> RunOnce(const Options& o, bool speculate, int32_t batch) {
  EngineConfig c;
  c.model_dir = o.model;
  c.num_threads = o.threads;
  c.max_num_seqs = std::max(batch, 1);
  c.max_num_batched_tokens = std::max(2048, batch * (o.k + 1));
  c.kv_cache_memory_bytes = int64_t{256} << 20;
  if (speculate) {
    ASSIGN_OR_RETURN(c.speculative.method, ParseSpeculativeMethod(o.method));
    c.speculative.num_speculative_tokens = o.k;
    if (o.force) c.speculative.disable_batch_size = 0;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(c));
  if (engine->tokenizer() == nullptr) return absl::NotFoundError("the model has no tokenizer");
  std::vector<std::shared_ptr<RequestStream>> streams;
  ASSIGN_OR_RETURN(const std::vector<std::vector<int32_t>> prompts, Prompts(*engine->tokenizer(), o, batch));
  const auto start = std::chrono::steady_clock::now();
  for (const std::vector<int32_t>& prompt : prompts) {
    EngineRequest r;
    r.prompt_token_ids = prompt;
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = o.max_tokens;
    r.sampling.ignore_eos = true;
    ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, engine->AddRequest(std::move(r)));
    streams.push_back(std::move(s));
  }
  engine->RunUntilIdle();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int64_t tokens = 0;
  for (auto& s : streams) tokens += s->WaitForCompletion().usage.completion_tokens;
  const EngineMetrics m = engine->GetMetrics();
  return Run{static_cast<double>(tokens) / seconds, m.spec_decode.draft_tokens, m.spec_decode.accepted_tokens};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

absl::Status Main(const Options& o) {
  std::printf("| batch | plain tok/s | %s k=%d tok/s | ratio | acceptance |\n|---:|---:|---:|---:|---:|\n",
              o.method.c_str(), o.k);
  for (int32_t batch : o.batches) {
    std::vector<double> plain, spec, ratios;
    int64_t drafts = 0, accepted = 0;
    for (int32_t r = 0; r < o.repeats; ++r) {
      ASSIGN_OR_RETURN(Run a, RunOnce(o, false, batch));
      ASSIGN_OR_RETURN(Run b, RunOnce(o, true, batch));
      plain.push_back(a.tokens_per_s);
      spec.push_back(b.tokens_per_s);
      ratios.push_back(b.tokens_per_s / a.tokens_per_s);
      drafts += b.drafts;
      accepted += b.accepted;
    }
    std::printf("| %d | %.0f | %.0f | %.2f | %s |\n", batch, Median(plain), Median(spec), Median(ratios),
                drafts > 0 ? absl::StrFormat("%.3f", static_cast<double>(accepted) / drafts).c_str() : "off (auto)");
    std::fflush(stdout);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace moeserve

int main(int argc, char** argv) {
  moeserve::Options o;
  CLI::App app("speculative vs plain decoding, side by side");
  app.add_option("--model", o.model, "model directory (with tokenizer.json)")->required();
  app.add_option("--method", o.method, "mtp or ngram")->capture_default_str();
  app.add_option("--k", o.k, "draft tokens per step")->capture_default_str();
  app.add_option("--batch", o.batches, "batch sizes (concurrent requests)")->delimiter(',');
  app.add_option("--max-tokens", o.max_tokens, "tokens per request")->capture_default_str();
  app.add_option("--repeats", o.repeats, "alternating rounds; the median is reported")->capture_default_str();
  app.add_option("--prompts", o.prompts, "story, repeat or edit")->capture_default_str();
  app.add_option("--prompt-file", o.prompt_file, "ShareGPT JSON for --prompts edit")->capture_default_str();
  app.add_option("--max-prompt-tokens", o.max_prompt_tokens, "--prompts edit: keep each prompt's last N tokens")
      ->capture_default_str();
  app.add_flag("--force", o.force, "speculate in every step (no per-step auto-off)");
  app.add_option("--threads", o.threads, "CPU threads")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const absl::Status s = moeserve::Main(o);
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

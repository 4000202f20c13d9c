// `moeserve generate`: one prompt through the engine, the completion printed as it is generated.

#include <cstdio>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/cli/commands.h"
#include "server/common/status_macros.h"
#include "server/engine/engine.h"
#include "server/serving/frontend.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve {
namespace {

absl::Status CheckModelDir(const std::string& dir) {
  if (!std::filesystem::exists(std::filesystem::path(dir) / "config.json")) {
    return absl::NotFoundError(absl::StrCat("no model at ", dir, " (config.json missing); pass --model DIR"));
  }
  return absl::OkStatus();
}

struct GenerateOptions {
  std::string model = DefaultModelDir();
  std::string prompt;
  std::string device = "cpu";
  int32_t max_tokens = 256;
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  int threads = 0;
  int64_t kv_cache_mib = 256;
  bool ignore_eos = false;
  bool stats = false;
  // gpu_memory_utilization, device_kv_cache_memory_bytes, CUDA graphs, tensor parallelism,
  // speculative decoding
  EngineConfig memory;
};

// Rank 0's part: runs the prompt through the same engine `serve` uses and streams the text.
absl::Status GenerateOnLeader(const GenerateOptions& o, const EngineConfig& config, DistContext* dist) {
  const auto load_start = absl::Now();
  ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(config, dist));
  const auto load_end = absl::Now();
  const Tokenizer* tokenizer = engine->tokenizer();
  if (tokenizer == nullptr) return absl::NotFoundError(absl::StrCat(o.model, ": no tokenizer.json"));

  serving::ServingRequest request;
  request.names.prompt = "--prompt";
  if (o.prompt.empty()) {
    std::optional<int32_t> bos = tokenizer->bos_token_id();
    if (!bos) bos = engine->model_config().bos_token_id;
    if (!bos) return absl::InvalidArgumentError("--prompt is empty and the model has no BOS token to start from");
    request.prompt = serving::TokenPrompt{{*bos}};
  } else {
    request.prompt = serving::TextPrompt{.text = o.prompt};
  }
  request.sampling = {.max_tokens = o.max_tokens,
                      .temperature = o.temperature,
                      .top_k = o.top_k,
                      .top_p = o.top_p,
                      .seed = o.seed,
                      .ignore_eos = o.ignore_eos,
                      .stop = o.stop};
  engine->Start();
  serving::Frontend frontend(engine.get(), {});
  serving::Output last;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<serving::Call> call, frontend.Submit(std::move(request)));
    while (std::optional<serving::Output> out = call->Next(absl::InfiniteDuration())) {
      std::fwrite(out->text.data(), 1, out->text.size(), stdout);
      std::fflush(stdout);
      last = std::move(*out);
      if (last.request_finished) break;
    }
  }
  engine->Stop();
  std::fputc('\n', stdout);
  if (last.finish_reason == FinishReason::kError) return last.error;
  if (o.stats) {
    const RequestTimings& t = last.timings;
    const double total = absl::ToDoubleSeconds(t.finish - t.arrival);
    const double decode = absl::ToDoubleSeconds(t.finish - t.first_token);
    const int64_t n = last.usage.completion_tokens;
    std::fprintf(stderr,
                 "load %.3f s; %lld prompt tokens; %lld generated in %.3f s; first token %.1f ms; "
                 "%.1f tokens/s after it; finish: %s\n",
                 absl::ToDoubleSeconds(load_end - load_start), static_cast<long long>(last.usage.prompt_tokens),
                 static_cast<long long>(n), total, 1000.0 * absl::ToDoubleSeconds(t.first_token - t.arrival),
                 n > 1 && decode > 0 ? static_cast<double>(n - 1) / decode : 0.0,
                 std::string(FinishReasonName(last.finish_reason)).c_str());
    const SpecDecodeMetrics spec = engine->GetMetrics().spec_decode;
    if (spec.draft_tokens > 0) {
      std::fprintf(stderr, "speculative: %lld drafts verified, %lld accepted (%.3f); per position:",
                   static_cast<long long>(spec.draft_tokens), static_cast<long long>(spec.accepted_tokens),
                   static_cast<double>(spec.accepted_tokens) / spec.draft_tokens);
      for (size_t j = 0; j < spec.draft_tokens_per_position.size(); ++j) {
        const int64_t d = spec.draft_tokens_per_position[j];
        std::fprintf(stderr, " %.3f", d > 0 ? static_cast<double>(spec.accepted_tokens_per_position[j]) / d : 0.0);
      }
      std::fprintf(stderr, "\n");
    }
  }
  return absl::OkStatus();
}

absl::Status RunGenerate(const GenerateOptions& o) {
  RETURN_IF_ERROR(CheckModelDir(o.model));
  EngineConfig config = o.memory;
  config.model_dir = o.model;
  config.device = o.device;
  config.num_threads = o.threads;
  config.kv_cache_memory_bytes = o.kv_cache_mib << 20;
  return RunGroup(config, [&](DistContext* dist) { return GenerateOnLeader(o, config, dist); });
}

}  // namespace

void AddGenerateCommand(CLI::App& app, absl::Status* status) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate a completion for one prompt and print it");
  cmd->add_option("--model", o->model, "Hugging Face model directory")->capture_default_str();
  cmd->add_option("--prompt", o->prompt, "prompt text; empty starts from BOS alone");
  cmd->add_option("--max-tokens", o->max_tokens, "tokens to generate at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--temperature", o->temperature, "0 = greedy")->capture_default_str()->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", o->top_k, "keep the k most likely tokens (0 = all)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--seed", o->seed, "sampling seed (default: random)");
  cmd->add_option("--stop", o->stop, "stop string (repeatable)");
  cmd->add_option("--kv-cache-mib", o->kv_cache_mib, "KV cache memory in MiB")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--device", o->device, "cpu, cuda or auto")->capture_default_str();
  AddDeviceMemoryOptions(cmd, &o->memory);
  AddParallelOptions(cmd, &o->memory);
  AddSpeculativeOptions(cmd, &o->memory.speculative);
  cmd->add_option("--threads", o->threads, "CPU threads (0 = all)")->capture_default_str();
  cmd->add_flag("--ignore-eos", o->ignore_eos, "keep generating after EOS");
  cmd->add_flag("--stats", o->stats, "print timing to stderr");
  cmd->callback([o, status] { *status = RunGenerate(*o); });
}

}  // namespace moeserve

// `moeserve generate` (one prompt, printed as it is generated) and `moeserve tokenize`.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/backend/registry.h"
#include "server/cli/commands.h"
#include "server/cli/single_sequence.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/model/model.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve {
namespace {

absl::Status CheckModelDir(const std::string& dir) {
  if (!std::filesystem::exists(std::filesystem::path(dir) / "config.json")) {
    return absl::NotFoundError(absl::StrCat("no model at ", dir, " (config.json missing); pass --model DIR"));
  }
  return absl::OkStatus();
}

// Bytes of `text` that are safe to print: everything up to a trailing U+FFFD, which marks a
// character whose remaining bytes are still to come.
size_t StableLength(const std::string& text) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  size_t n = text.size();
  while (n >= kReplacement.size() && std::string_view(text).substr(n - kReplacement.size()) == kReplacement) {
    n -= kReplacement.size();
  }
  return n;
}

struct GenerateOptions {
  std::string model = DefaultModelDir();
  std::string prompt;
  std::string device = "cpu";
  int32_t max_tokens = 256;
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  int threads = 0;
  bool ignore_eos = false;
  bool stats = false;
};

absl::Status RunGenerate(const GenerateOptions& o) {
  RETURN_IF_ERROR(CheckModelDir(o.model));
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::FromDirectory(o.model));
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend({.device = o.device, .num_threads = o.threads}));
  const auto load_start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, LoadModel(o.model, backend.get()));
  const auto load_end = std::chrono::steady_clock::now();

  std::vector<int32_t> prompt;
  if (o.prompt.empty()) {
    const std::optional<int32_t> bos = tokenizer->bos_token_id().has_value() ? tokenizer->bos_token_id()
                                                                            : model->config().bos_token_id;
    if (!bos) return absl::InvalidArgumentError("--prompt is empty and the model has no BOS token to start from");
    prompt.push_back(*bos);
  } else {
    ASSIGN_OR_RETURN(prompt, tokenizer->Encode(o.prompt, /*add_special_tokens=*/true));
  }

  SingleSequenceOptions options;
  options.sampling = {.max_tokens = o.max_tokens, .temperature = o.temperature, .top_k = o.top_k,
                      .top_p = o.top_p, .seed = o.seed, .ignore_eos = o.ignore_eos};
  options.eos_token_ids = model->config().eos_token_ids;
  if (auto eos = tokenizer->eos_token_id()) options.eos_token_ids.push_back(*eos);
  // Print the completion as it grows: decode(prompt + output) minus decode(prompt), so that
  // tokenizers that strip a leading space never eat one from the completion.
  ASSIGN_OR_RETURN(const std::string prompt_text, tokenizer->Decode(prompt, /*skip_special_tokens=*/true));
  std::vector<int32_t> all = prompt;
  size_t printed = prompt_text.size();
  absl::Status stream_status;
  options.on_token = [&](int32_t token) {
    if (!stream_status.ok()) return;
    if (!o.ignore_eos && std::find(options.eos_token_ids.begin(), options.eos_token_ids.end(), token) !=
                             options.eos_token_ids.end()) {
      return;
    }
    all.push_back(token);
    absl::StatusOr<std::string> text = tokenizer->Decode(all, /*skip_special_tokens=*/true);
    if (!text.ok()) {
      stream_status = text.status();
      return;
    }
    const size_t stable = StableLength(*text);
    if (stable > printed && text->compare(0, prompt_text.size(), prompt_text) == 0) {
      std::fwrite(text->data() + printed, 1, stable - printed, stdout);
      std::fflush(stdout);
      printed = stable;
    }
  };
  const auto gen_start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(std::vector<int32_t> out, GenerateSingleSequence(*model, *backend, prompt, options));
  const auto gen_end = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(stream_status);
  std::fputc('\n', stdout);
  if (o.stats) {
    const double secs = std::chrono::duration<double>(gen_end - gen_start).count();
    std::fprintf(stderr, "load %.3f s, %zu prompt tokens, %zu generated in %.3f s (%.1f tokens/s)\n",
                 std::chrono::duration<double>(load_end - load_start).count(), prompt.size(), out.size(), secs,
                 secs > 0 ? static_cast<double>(out.size()) / secs : 0.0);
  }
  return absl::OkStatus();
}

}  // namespace

void AddGenerateCommand(CLI::App& app, absl::Status* status) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate a completion for one prompt and print it");
  cmd->add_option("--model", o->model, "Hugging Face model directory")->capture_default_str();
  cmd->add_option("--prompt", o->prompt, "prompt text; empty starts from BOS alone");
  cmd->add_option("--max-tokens", o->max_tokens, "tokens to generate at most")->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--temperature", o->temperature, "0 = greedy")->capture_default_str()->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", o->top_k, "keep the k most likely tokens (0 = all)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--seed", o->seed, "sampling seed")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (0 = all)")->capture_default_str();
  cmd->add_flag("--ignore-eos", o->ignore_eos, "keep generating after EOS");
  cmd->add_flag("--stats", o->stats, "print timing to stderr");
  cmd->callback([o, status] { *status = RunGenerate(*o); });
}

void AddTokenizeCommand(CLI::App& app, absl::Status* status) {
  struct Options {
    std::string model = DefaultModelDir();
    std::string text;
    std::string decode;
    bool no_special = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of --text, or the text of --decode ids");
  cmd->add_option("--model", o->model, "model (or tokenizer) directory")->capture_default_str();
  auto* text = cmd->add_option("--text", o->text, "text to encode");
  cmd->add_option("--decode", o->decode, "comma-separated ids to decode")->excludes(text);
  cmd->add_flag("--no-special", o->no_special, "do not add BOS/EOS when encoding; skip special tokens when decoding");
  cmd->callback([o, status] {
    *status = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::FromDirectory(o->model));
      if (!o->decode.empty()) {
        std::vector<int32_t> ids;
        for (absl::string_view part : absl::StrSplit(o->decode, ',', absl::SkipWhitespace())) {
          int32_t id;
          if (!absl::SimpleAtoi(part, &id)) {
            return absl::InvalidArgumentError(absl::StrCat("--decode: \"", std::string(part), "\" is not an integer id"));
          }
          ids.push_back(id);
        }
        ASSIGN_OR_RETURN(std::string decoded, tokenizer->Decode(ids, o->no_special));
        std::printf("%s\n", decoded.c_str());
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer->Encode(o->text, !o->no_special));
      std::printf("%s\n", absl::StrJoin(ids, " ").c_str());
      return absl::OkStatus();
    }();
  });
}

}  // namespace moeserve

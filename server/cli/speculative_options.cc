// The speculative-decoding options shared by `serve` and `generate` (see server/spec/spec_config.h).

#include <string>

#include "server/cli/commands.h"
#include "server/spec/spec_config.h"

namespace moeserve {

void AddSpeculativeOptions(CLI::App* cmd, SpeculativeConfig* config) {
  cmd->add_option_function<std::string>(
         "--speculative-method",
         [config](const std::string& text) {
           absl::StatusOr<SpeculativeMethod> method = ParseSpeculativeMethod(text);
           if (!method.ok()) {
             throw CLI::ValidationError("--speculative-method", std::string(method.status().message()));
           }
           config->method = *method;
         },
         "speculative decoding: none, ngram (prompt lookup, any model) or mtp (DeepSeek-V3's "
         "multi-token-prediction layer); greedy output is unchanged, sampling keeps its distribution")
      ->default_str("none");
  cmd->add_option("--num-speculative-tokens", config->num_speculative_tokens, "draft tokens verified per step")
      ->capture_default_str()
      ->check(CLI::Range(1, SpeculativeConfig::kMaxSpeculativeTokens));
  cmd->add_option("--ngram-min", config->ngram.min_n, "shortest suffix n-gram looked up (ngram)")
      ->capture_default_str()
      ->check(CLI::Range(1, NgramProposer::kMaxN));
  cmd->add_option("--ngram-max", config->ngram.max_n, "longest suffix n-gram looked up (ngram)")
      ->capture_default_str()
      ->check(CLI::Range(1, NgramProposer::kMaxN));
  cmd->add_option("--speculative-disable-batch-size", config->disable_batch_size,
                  "no drafts in a step with at least this many decoding requests (0: never off)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--speculative-min-acceptance", config->min_acceptance,
                  "a request whose draft acceptance falls below this stops drafting for a while "
                  "(0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
}

}  // namespace moeserve

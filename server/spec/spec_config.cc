#include "server/spec/spec_config.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace moeserve {

std::string_view SpeculativeMethodName(SpeculativeMethod method) {
  switch (method) {
    case SpeculativeMethod::kNone: return "none";
    case SpeculativeMethod::kNgram: return "ngram";
    case SpeculativeMethod::kMtp: return "mtp";
  }
  return "none";
}

absl::StatusOr<SpeculativeMethod> ParseSpeculativeMethod(std::string_view name) {
  for (SpeculativeMethod m : {SpeculativeMethod::kNone, SpeculativeMethod::kNgram, SpeculativeMethod::kMtp}) {
    if (name == SpeculativeMethodName(m)) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--speculative-method must be one of none, ngram, mtp; got \"", std::string(name), "\""));
}

absl::Status Validate(const SpeculativeConfig& config) {
  if (!config.enabled()) return absl::OkStatus();
  if (config.num_speculative_tokens < 1 || config.num_speculative_tokens > SpeculativeConfig::kMaxSpeculativeTokens) {
    return absl::InvalidArgumentError(absl::StrCat("--num-speculative-tokens must be in [1, ",
                                                   SpeculativeConfig::kMaxSpeculativeTokens, "], got ",
                                                   config.num_speculative_tokens));
  }
  if (config.disable_batch_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--speculative-disable-batch-size must not be negative, got ", config.disable_batch_size));
  }
  if (!(config.min_acceptance >= 0.0 && config.min_acceptance <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--speculative-min-acceptance must be in [0, 1], got ", config.min_acceptance));
  }
  if (config.method == SpeculativeMethod::kNgram) {
    return NgramProposer::Create(config.ngram).status();
  }
  return absl::OkStatus();
}

}  // namespace moeserve

#ifndef MOESERVE_SERVER_SPEC_SPEC_CONFIG_H_
#define MOESERVE_SERVER_SPEC_SPEC_CONFIG_H_

// SpeculativeConfig: how the engine speculates (flags --speculative-method,
// --num-speculative-tokens, --ngram-min/--ngram-max, --speculative-disable-batch-size,
// --speculative-min-acceptance on `serve` and `generate`).

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/spec/ngram_proposer.h"

namespace moeserve {

enum class SpeculativeMethod : uint8_t {
  kNone,
  kNgram,  // prompt lookup (ngram_proposer.h): any model, no weights
  kMtp,    // DeepSeek-V3's multi-token-prediction layer, chained for k drafts
};

// "none", "ngram", "mtp".
std::string_view SpeculativeMethodName(SpeculativeMethod method);
absl::StatusOr<SpeculativeMethod> ParseSpeculativeMethod(std::string_view name);

struct SpeculativeConfig {
  SpeculativeMethod method = SpeculativeMethod::kNone;
  int32_t num_speculative_tokens = 3;  // k drafts per step, in [1, kMaxSpeculativeTokens]
  NgramOptions ngram;
  // Per-step auto-off: no drafts in a step that runs at least this many decoding requests, where
  // verifying k + 1 positions per request costs more than the accepted tokens save (the forward
  // pass is no longer bound by reading the weights). 0: never off. Measured in docs/PERF.md.
  int32_t disable_batch_size = kDefaultDisableBatchSize;
  // Per-request auto-off: a request whose acceptance (EMA over its verify steps, weight
  // kAcceptanceEmaWeight per step) falls below this drafts nothing for kBackoffSteps steps, then
  // tries again. 0: never off.
  double min_acceptance = 0.2;

  static constexpr int32_t kMaxSpeculativeTokens = 16;
  static constexpr int32_t kDefaultDisableBatchSize = 32;
  static constexpr double kAcceptanceEmaWeight = 0.3;
  static constexpr int32_t kBackoffSteps = 32;

  bool enabled() const { return method != SpeculativeMethod::kNone; }
};

// InvalidArgument naming the flag for a value out of range.
absl::Status Validate(const SpeculativeConfig& config);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SPEC_SPEC_CONFIG_H_

#ifndef MOESERVE_SERVER_SPEC_SPECULATOR_H_
#define MOESERVE_SERVER_SPEC_SPECULATOR_H_

// Speculator: the engine's speculative-decoding bookkeeping. Before each Schedule(),
// ProposeDrafts gives every running, decoding request its drafts through
// Scheduler::SetDraftTokens: an n-gram lookup over the request's tokens, or the drafts the model
// runner's MTP layer produced for it in the previous step (SetModelDrafts). After each step,
// RecordStep counts drafted and accepted tokens (metrics, per draft position) and keeps each
// request's acceptance for the auto-off rules of SpeculativeConfig:
//   per step     no drafts at all when at least disable_batch_size requests decode;
//   per request  acceptance EMA (weight kAcceptanceEmaWeight per verify step, starting at 1)
//                below min_acceptance: no drafts for kBackoffSteps steps, then a fresh start.
// Drafts are decided here, on the engine thread of rank 0, and travel with the scheduled tokens.
//
// Requires external synchronization (the engine thread).

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/scheduler/scheduler.h"
#include "server/spec/ngram_proposer.h"
#include "server/spec/spec_config.h"

namespace moeserve {

struct SpecDecodeMetrics {
  int64_t num_drafts = 0;       // verify steps: entries that verified at least one draft
  int64_t draft_tokens = 0;     // drafts verified
  int64_t accepted_tokens = 0;  // of which accepted
  // Per draft position j (0-based, k entries): drafts verified there and accepted there.
  std::vector<int64_t> draft_tokens_per_position;
  std::vector<int64_t> accepted_tokens_per_position;
};

class Speculator {
 public:
  // InvalidArgument for a bad config (Validate) or a disabled one.
  static absl::StatusOr<std::unique_ptr<Speculator>> Create(const SpeculativeConfig& config);

  Speculator(const Speculator&) = delete;
  Speculator& operator=(const Speculator&) = delete;

  const SpeculativeConfig& config() const { return config_; }

  // Whether a step with `num_decoding` decoding requests speculates (the per-step rule).
  bool ActiveFor(int32_t num_decoding) const;

  // Sets (or clears) the drafts of each of `ids` that is running and decoding. Returns how many
  // requests got drafts.
  int32_t ProposeDrafts(absl::Span<const RequestId> ids, Scheduler* scheduler);

  // MTP: the drafts the model produced for `id` in the step just run; used by the next
  // ProposeDrafts (then dropped).
  void SetModelDrafts(RequestId id, absl::Span<const int32_t> drafts);

  // Counts the step's verified drafts: num_accepted[i] of step.scheduled[i].num_draft_tokens
  // (entries of requests finished meanwhile included: their drafts were verified).
  void RecordStep(const SchedulerOutput& step, absl::Span<const int32_t> num_accepted);

  // Drops a finished request's state.
  void Forget(RequestId id) { states_.erase(id); }

  // Whether `id` is backing off after low acceptance (tests).
  bool BackingOff(RequestId id) const;

  const SpecDecodeMetrics& metrics() const { return metrics_; }

 private:
  struct State {
    double acceptance = 1.0;  // EMA of accepted / drafted per verify step
    int32_t off_steps = 0;    // steps left without drafts
    std::vector<int32_t> model_drafts;
  };

  explicit Speculator(const SpeculativeConfig& config, std::optional<NgramProposer> ngram);

  const SpeculativeConfig config_;
  const std::optional<NgramProposer> ngram_;
  absl::flat_hash_map<RequestId, State> states_;
  std::vector<int32_t> drafts_;  // scratch
  SpecDecodeMetrics metrics_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SPEC_SPECULATOR_H_

#include "server/spec/speculator.h"

#include <algorithm>
#include <utility>

namespace moeserve {

absl::StatusOr<std::unique_ptr<Speculator>> Speculator::Create(const SpeculativeConfig& config) {
  if (!config.enabled()) {
    return absl::InvalidArgumentError("speculator: --speculative-method is none");
  }
  if (absl::Status s = Validate(config); !s.ok()) return s;
  std::optional<NgramProposer> ngram;
  if (config.method == SpeculativeMethod::kNgram) {
    absl::StatusOr<NgramProposer> created = NgramProposer::Create(config.ngram);
    if (!created.ok()) return created.status();
    ngram.emplace(*created);
  }
  return std::unique_ptr<Speculator>(new Speculator(config, std::move(ngram)));
}

Speculator::Speculator(const SpeculativeConfig& config, std::optional<NgramProposer> ngram)
    : config_(config), ngram_(std::move(ngram)) {
  metrics_.draft_tokens_per_position.assign(config.num_speculative_tokens, 0);
  metrics_.accepted_tokens_per_position.assign(config.num_speculative_tokens, 0);
}

bool Speculator::ActiveFor(int32_t num_decoding) const {
  return config_.disable_batch_size <= 0 || num_decoding < config_.disable_batch_size;
}

bool Speculator::BackingOff(RequestId id) const {
  auto it = states_.find(id);
  return it != states_.end() && it->second.off_steps > 0;
}

int32_t Speculator::ProposeDrafts(absl::Span<const RequestId> ids, Scheduler* scheduler) {
  auto decoding = [&](RequestId id) -> const Request* {
    const Request* r = scheduler->GetRequest(id);
    if (r == nullptr || r->status() != RequestStatus::kRunning || r->num_tokens() - r->num_computed_tokens() != 1) {
      return nullptr;
    }
    return r;
  };
  int32_t num_decoding = 0;
  for (RequestId id : ids) num_decoding += decoding(id) != nullptr ? 1 : 0;
  const bool active = ActiveFor(num_decoding);
  int32_t proposed = 0;
  for (RequestId id : ids) {
    const Request* r = decoding(id);
    if (r == nullptr) continue;
    State& state = states_[id];
    drafts_.clear();
    if (state.off_steps > 0) {
      if (--state.off_steps == 0) state.acceptance = 1.0;
    } else if (active) {
      if (ngram_.has_value()) {
        ngram_->Propose(r->token_ids(), config_.num_speculative_tokens, &drafts_);
      } else {
        const size_t n = std::min<size_t>(state.model_drafts.size(), config_.num_speculative_tokens);
        drafts_.assign(state.model_drafts.begin(), state.model_drafts.begin() + n);
      }
    }
    state.model_drafts.clear();
    if (scheduler->SetDraftTokens(id, drafts_) > 0) ++proposed;
  }
  return proposed;
}

void Speculator::SetModelDrafts(RequestId id, absl::Span<const int32_t> drafts) {
  State& state = states_[id];
  state.model_drafts.assign(drafts.begin(), drafts.end());
}

void Speculator::RecordStep(const SchedulerOutput& step, absl::Span<const int32_t> num_accepted) {
  for (size_t i = 0; i < step.scheduled.size(); ++i) {
    const int32_t k = step.scheduled[i].num_draft_tokens;
    if (k == 0) continue;
    const int32_t a = i < num_accepted.size() ? num_accepted[i] : 0;
    ++metrics_.num_drafts;
    metrics_.draft_tokens += k;
    metrics_.accepted_tokens += a;
    for (int32_t j = 0; j < k && j < static_cast<int32_t>(metrics_.draft_tokens_per_position.size()); ++j) {
      ++metrics_.draft_tokens_per_position[j];
      if (j < a) ++metrics_.accepted_tokens_per_position[j];
    }
    auto it = states_.find(step.scheduled[i].id);
    if (it == states_.end()) continue;  // finished and forgotten
    State& state = it->second;
    const double w = SpeculativeConfig::kAcceptanceEmaWeight;
    state.acceptance = (1.0 - w) * state.acceptance + w * static_cast<double>(a) / k;
    if (state.acceptance < config_.min_acceptance) {
      state.off_steps = SpeculativeConfig::kBackoffSteps;
    }
  }
}

}  // namespace moeserve

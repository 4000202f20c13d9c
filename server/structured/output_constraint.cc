#include "server/structured/output_constraint.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace moeserve::structured {
namespace {

void SetBit(uint32_t* mask, int32_t id, bool on) {
  if (on) {
    mask[id >> 5] |= 1u << (id & 31);
  } else {
    mask[id >> 5] &= ~(1u << (id & 31));
  }
}

}  // namespace

OutputConstraint::OutputConstraint(std::shared_ptr<const OutputConstraintSpec> spec, int32_t max_drafts)
    : spec_(std::move(spec)), max_drafts_(max_drafts), matcher_(spec_->grammar, max_drafts) {
  MS_CHECK(max_drafts >= 0);
  state_.in_reasoning = spec_->reasoning.enabled() && spec_->starts_in_reasoning;
}

bool OutputConstraint::IsStop(int32_t token) const {
  const auto stops = spec_->grammar->vocab().stop_ids();
  return std::binary_search(stops.begin(), stops.end(), token) ||
         std::binary_search(spec_->stop_token_ids.begin(), spec_->stop_token_ids.end(), token);
}

bool OutputConstraint::CanEnd() const { return !state_.in_reasoning && matcher_.CanEnd(); }

void OutputConstraint::FillMask(uint32_t* mask) {
  const TokenVocabulary& vocab = spec_->grammar->vocab();
  const int32_t words = vocab.mask_words();
  if (state_.in_reasoning) {
    // Anything but the end of the output: the grammar has not started yet.
    std::fill(mask, mask + words, ~0u);
    if (const int32_t tail = vocab.mask_size() % 32; tail != 0) mask[words - 1] = (1u << tail) - 1;
    for (int32_t id : vocab.stop_ids()) SetBit(mask, id, false);
    for (int32_t id : spec_->stop_token_ids) SetBit(mask, id, false);
    return;
  }
  matcher_.FillNextTokenBitmask(mask);
  // The request's own stop ids end it like EOS: only where the output is complete.
  const bool can_end = matcher_.CanEnd();
  for (int32_t id : spec_->stop_token_ids) SetBit(mask, id, can_end);
  // A thinking model may open its reasoning block with its first token.
  if (spec_->reasoning.enabled() && state_.num_outputs == 0) SetBit(mask, spec_->reasoning.start, true);
  if (state_.num_outputs < spec_->min_tokens) ApplyMinTokens(mask);
}

void OutputConstraint::ApplyMinTokens(uint32_t* mask) {
  const TokenVocabulary& vocab = spec_->grammar->vocab();
  const int32_t words = vocab.mask_words();
  stops_.clear();
  if (!spec_->ignore_eos) stops_.insert(stops_.end(), vocab.stop_ids().begin(), vocab.stop_ids().end());
  stops_.insert(stops_.end(), spec_->stop_token_ids.begin(), spec_->stop_token_ids.end());
  // Whether anything but a stop id is allowed (a stop's bit does not count).
  bool other = false;
  for (int32_t w = 0; w < words && !other; ++w) {
    uint32_t bits = mask[w];
    if (bits == 0) continue;
    for (int32_t id : stops_) {
      if (id >> 5 == w) bits &= ~(1u << (id & 31));
    }
    other = bits != 0;
  }
  if (!other) return;  // only the end is possible: the grammar wins over min_tokens
  for (int32_t id : stops_) SetBit(mask, id, false);
}

bool OutputConstraint::Advance(int32_t token) {
  if (state_.in_reasoning) {
    if (IsStop(token)) return false;
    if (token == spec_->reasoning.end) state_.in_reasoning = false;
    ++state_.num_outputs;
    return true;
  }
  if (spec_->reasoning.enabled() && state_.num_outputs == 0 && token == spec_->reasoning.start) {
    state_.in_reasoning = true;
    ++state_.num_outputs;
    return true;
  }
  const auto stops = spec_->grammar->vocab().stop_ids();
  if (!std::binary_search(stops.begin(), stops.end(), token) &&
      std::binary_search(spec_->stop_token_ids.begin(), spec_->stop_token_ids.end(), token)) {
    // The request's own stop id: it ends the output (the matcher stays where it is).
    if (!matcher_.CanEnd()) return false;
    ++state_.num_outputs;
    return true;
  }
  if (!matcher_.AcceptToken(token)) return false;
  ++state_.matcher_tokens;
  ++state_.num_outputs;
  return true;
}

void OutputConstraint::FillMasks(absl::Span<const int32_t> drafts, uint32_t* masks) {
  MS_CHECK(static_cast<int32_t>(drafts.size()) <= max_drafts_);
  const size_t words = static_cast<size_t>(mask_words());
  FillMask(masks);
  if (drafts.empty()) return;
  const State saved = state_;
  size_t j = 0;
  for (; j < drafts.size() && Advance(drafts[j]); ++j) FillMask(masks + (j + 1) * words);
  for (size_t r = j + 1; r <= drafts.size(); ++r) {
    std::memcpy(masks + r * words, masks + j * words, words * sizeof(uint32_t));
  }
  matcher_.Rollback(state_.matcher_tokens - saved.matcher_tokens);
  state_ = saved;
}

absl::Status OutputConstraint::Accept(int32_t token) {
  if (Advance(token)) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("structured output: generated token ", token, " does not match the constraint"));
}

}  // namespace moeserve::structured

#include "server/structured/matcher.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "server/common/status_macros.h"

namespace moeserve::structured {

absl::StatusOr<std::shared_ptr<const CompiledGrammar>> CompiledGrammar::Compile(
    const Grammar& grammar, std::shared_ptr<const TokenVocabulary> vocab, const CompileLimits& limits) {
  std::shared_ptr<CompiledGrammar> g(new CompiledGrammar());
  ASSIGN_OR_RETURN(g->pda_, BuildPda(grammar, limits.pda));
  CompileBudget budget(limits.pda.max_states, limits.pda.max_time);
  ASSIGN_OR_RETURN(g->masks_, TokenMaskCache::Build(g->pda_, *vocab, &budget, limits.masks));
  g->vocab_ = std::move(vocab);
  return std::shared_ptr<const CompiledGrammar>(std::move(g));
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar, int32_t max_rollback)
    : grammar_(std::move(grammar)),
      max_rollback_(max_rollback),
      stepper_(&grammar_->pda()),
      walker_(&grammar_->pda(), &grammar_->vocab()),
      scratch_mask_(grammar_->vocab().mask_words()) {
  PdaStepper::Flags flags;
  const Stack start{grammar_->pda().root_start(), kBottom};
  stepper_.Closure(absl::MakeConstSpan(&start, 1), &arena_, &stacks_, &flags);
  accepted_ = flags.accepted;
}

bool GrammarMatcher::Consume(std::string_view bytes, bool* accepted) {
  cur_ = stacks_;
  *accepted = accepted_;
  for (char c : bytes) {
    PdaStepper::Flags flags;
    if (!stepper_.Advance(cur_, static_cast<uint8_t>(c), &arena_, &next_, &flags)) return false;
    *accepted = flags.accepted;
    std::swap(cur_, next_);
  }
  return true;
}

void GrammarMatcher::Commit(bool accepted) {
  if (max_rollback_ > 0) {
    history_.push_back(Snapshot{std::move(stacks_), accepted_, terminated_});
    if (static_cast<int32_t>(history_.size()) > max_rollback_) history_.pop_front();
  }
  stacks_ = cur_;
  accepted_ = accepted;
  MaybeCompact();
}

bool GrammarMatcher::AcceptToken(int32_t id) {
  const TokenVocabulary& vocab = grammar_->vocab();
  const auto stops = vocab.stop_ids();
  const bool stop = std::binary_search(stops.begin(), stops.end(), id);
  if (terminated_ && !stop) return false;  // only stop ids after the end (a request ignoring EOS)
  if (stop) {
    if (!accepted_ && !terminated_) return false;
    cur_ = stacks_;
    Commit(accepted_);
    terminated_ = true;
    return true;
  }
  const std::string* bytes = vocab.bytes(id);
  if (bytes == nullptr || bytes->empty()) return false;
  bool accepted = false;
  if (!Consume(*bytes, &accepted)) return false;
  Commit(accepted);
  return true;
}

bool GrammarMatcher::AcceptBytes(std::string_view bytes) {
  if (terminated_) return false;
  bool accepted = false;
  if (!Consume(bytes, &accepted)) return false;
  Commit(accepted);
  return true;
}

void GrammarMatcher::Rollback(int32_t count) {
  for (int32_t i = 0; i < count && !history_.empty(); ++i) {
    Snapshot& s = history_.back();
    stacks_ = std::move(s.stacks);
    accepted_ = s.accepted;
    terminated_ = s.terminated;
    history_.pop_back();
  }
}

void GrammarMatcher::MaybeCompact() {
  if (arena_.size() < compact_at_) return;
  std::vector<std::vector<Stack>*> roots{&stacks_};
  for (Snapshot& s : history_) roots.push_back(&s.stacks);
  arena_.Compact(std::move(roots));
  compact_at_ = std::max(4096, 2 * arena_.size());
}

void GrammarMatcher::FillNextTokenBitmask(uint32_t* mask) {
  const TokenVocabulary& vocab = grammar_->vocab();
  const int32_t mask_size = vocab.mask_size();
  const int32_t words = vocab.mask_words();
  if (terminated_ || stacks_.empty()) {
    std::memset(mask, 0, static_cast<size_t>(words) * 4);
  } else {
    // Group the stacks by (top state, context state).
    keys_.clear();
    for (int32_t i = 0; i < static_cast<int32_t>(stacks_.size()); ++i) {
      const Stack& s = stacks_[i];
      const int32_t context = s.parent >= 0 ? arena_.node(s.parent).state : -1;
      keys_.emplace_back(StackKey(Stack{s.state, context}), i);
    }
    std::sort(keys_.begin(), keys_.end());
    const TokenMaskCache& cache = grammar_->masks();
    bool first = true;
    for (size_t g = 0; g < keys_.size();) {
      size_t end = g;
      while (end < keys_.size() && keys_[end].first == keys_[g].first) ++end;
      const int32_t state = static_cast<int32_t>(keys_[g].first >> 32);
      const auto context = static_cast<int32_t>(static_cast<uint32_t>(keys_[g].first));
      const TokenMaskCache::View view = cache.Lookup(state, context);
      if (first) {
        view.accepted->Write(mask, mask_size);
        first = false;
      } else {
        view.accepted->OrInto(mask, mask_size, scratch_mask_.data());
      }
      for (int32_t id : view.extra) mask[id >> 5] |= 1u << (id & 31);
      if (!view.uncertain.empty()) {
        group_.clear();
        for (size_t k = g; k < end; ++k) group_.push_back(stacks_[keys_[k].second]);
        const int32_t mark = arena_.size();
        walker_.WalkSorted(
            group_, view.uncertain, &arena_,
            [&](int32_t p) {
              const int32_t id = vocab.sorted_id(p);
              return (mask[id >> 5] >> (id & 31)) & 1u;
            },
            [&](int32_t p, TokenVerdict v) {
              if (v == TokenVerdict::kAccepted) {
                const int32_t id = vocab.sorted_id(p);
                mask[id >> 5] |= 1u << (id & 31);
              }
            });
        arena_.Truncate(mark);
      }
      g = end;
    }
  }
  for (int32_t id : vocab.stop_ids()) {
    if (accepted_ || terminated_) {
      mask[id >> 5] |= 1u << (id & 31);
    } else {
      mask[id >> 5] &= ~(1u << (id & 31));
    }
  }
}

}  // namespace moeserve::structured

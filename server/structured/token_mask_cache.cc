#include "server/structured/token_mask_cache.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "server/common/status_macros.h"
#include "server/structured/stack_arena.h"
#include "server/structured/token_walker.h"

namespace moeserve::structured {
namespace {

int32_t Words(int32_t mask_size) { return (mask_size + 31) / 32; }

void SetBit(uint32_t* mask, int32_t id) { mask[id >> 5] |= 1u << (id & 31); }
void ClearBit(uint32_t* mask, int32_t id) { mask[id >> 5] &= ~(1u << (id & 31)); }

void FillOnes(uint32_t* mask, int32_t mask_size) {
  const int32_t words = Words(mask_size);
  std::memset(mask, 0xFF, static_cast<size_t>(words) * 4);
  if (mask_size % 32 != 0) mask[words - 1] = (1u << (mask_size % 32)) - 1;
}

}  // namespace

TokenSet TokenSet::FromSortedRanges(absl::Span<const std::pair<int32_t, int32_t>> ranges,
                                    const TokenVocabulary& vocab) {
  TokenSet set;
  const int32_t mask_size = vocab.mask_size();
  const int64_t words = Words(mask_size);
  int64_t count = 0;
  for (const auto& [begin, end] : ranges) count += end - begin;
  if (count <= words) {
    set.kind_ = Kind::kIds;
    for (const auto& [begin, end] : ranges) {
      for (int32_t p = begin; p < end; ++p) set.ids_.push_back(vocab.sorted_id(p));
    }
    std::sort(set.ids_.begin(), set.ids_.end());
    return set;
  }
  set.bits_.assign(words, 0);
  for (const auto& [begin, end] : ranges) {
    for (int32_t p = begin; p < end; ++p) SetBit(set.bits_.data(), vocab.sorted_id(p));
  }
  if (mask_size - count <= words) {
    set.kind_ = Kind::kAllExcept;
    for (int32_t w = 0; w < words; ++w) {
      for (uint32_t zeros = ~set.bits_[w]; zeros != 0; zeros &= zeros - 1) {
        const int32_t id = w * 32 + __builtin_ctz(zeros);
        if (id < mask_size) set.ids_.push_back(id);
      }
    }
    set.bits_ = {};
    return set;
  }
  set.kind_ = Kind::kBitset;
  return set;
}

void TokenSet::Write(uint32_t* mask, int32_t mask_size) const {
  const int32_t words = Words(mask_size);
  switch (kind_) {
    case Kind::kIds:
      std::memset(mask, 0, static_cast<size_t>(words) * 4);
      for (int32_t id : ids_) SetBit(mask, id);
      return;
    case Kind::kAllExcept:
      FillOnes(mask, mask_size);
      for (int32_t id : ids_) ClearBit(mask, id);
      return;
    case Kind::kBitset: std::memcpy(mask, bits_.data(), static_cast<size_t>(words) * 4); return;
  }
}

void TokenSet::OrInto(uint32_t* mask, int32_t mask_size, uint32_t* scratch) const {
  const int32_t words = Words(mask_size);
  switch (kind_) {
    case Kind::kIds:
      for (int32_t id : ids_) SetBit(mask, id);
      return;
    case Kind::kAllExcept:
      FillOnes(scratch, mask_size);
      for (int32_t id : ids_) ClearBit(scratch, id);
      for (int32_t w = 0; w < words; ++w) mask[w] |= scratch[w];
      return;
    case Kind::kBitset:
      for (int32_t w = 0; w < words; ++w) mask[w] |= bits_[w];
      return;
  }
}

absl::StatusOr<std::unique_ptr<TokenMaskCache>> TokenMaskCache::Build(const Pda& pda, const TokenVocabulary& vocab,
                                                                      CompileBudget* budget, const Limits& limits) {
  auto cache = std::unique_ptr<TokenMaskCache>(new TokenMaskCache());
  StackArena arena;
  TokenWalker walker(&pda, &vocab);
  TokenWalker::TrieResult walk;
  const int32_t n = pda.num_states();

  // Contexts: the resume states of the call sites of each rule (and the bottom for the root). A
  // rule with one context is walked in it directly; the others in an unknown context first.
  std::vector<absl::flat_hash_set<int32_t>> context_sets(pda.num_rules());
  for (int32_t s = 0; s < n; ++s) {
    for (const Pda::Call& c : pda.calls(s)) context_sets[pda.rule_of(c.rule_start)].insert(c.resume);
  }
  context_sets[pda.root_rule()].insert(-1);
  std::vector<std::vector<int32_t>> contexts(pda.num_rules());
  for (int32_t r = 0; r < pda.num_rules(); ++r) {
    contexts[r].assign(context_sets[r].begin(), context_sets[r].end());
    std::sort(contexts[r].begin(), contexts[r].end());
  }
  auto start_of = [&](int32_t s, int32_t context) {
    return Stack{s, context < 0 ? kBottom : arena.Intern(context, kOpen)};
  };

  absl::flat_hash_map<std::vector<std::pair<int32_t, int32_t>>, int32_t> set_index;
  cache->entry_of_state_.assign(n, -1);
  for (int32_t s = 0; s < n; ++s) {
    if (!pda.scans(s)) continue;
    RETURN_IF_ERROR(budget->CheckTime());
    const std::vector<int32_t>& ctx = contexts[pda.rule_of(s)];
    walker.WalkTrie(ctx.size() == 1 ? start_of(s, ctx[0]) : Stack{s, kOpen}, &arena, &walk);
    arena.Truncate(0);
    StateEntry entry;
    auto [it, inserted] = set_index.try_emplace(walk.accepted, static_cast<int32_t>(cache->sets_.size()));
    if (inserted) cache->sets_.push_back(TokenSet::FromSortedRanges(walk.accepted, vocab));
    entry.accepted = it->second;
    // Uncertain: escaped ranges (merged) minus accepted ranges.
    std::sort(walk.escaped.begin(), walk.escaped.end());
    size_t a = 0;
    int32_t covered = 0;  // positions below this are done
    for (const auto& [begin, end] : walk.escaped) {
      for (int32_t p = std::max(begin, covered); p < end; ++p) {
        while (a < walk.accepted.size() && walk.accepted[a].second <= p) ++a;
        if (a < walk.accepted.size() && walk.accepted[a].first <= p) {
          p = walk.accepted[a].second - 1;  // skip the accepted run
          continue;
        }
        entry.uncertain.push_back(p);
      }
      covered = std::max(covered, end);
    }
    cache->entry_of_state_[s] = static_cast<int32_t>(cache->states_.size());
    cache->states_.push_back(std::move(entry));
  }

  // One frame deeper for the uncertain tokens of rules with several contexts.
  int64_t walked_bytes = 0;
  for (int32_t s = 0; s < n && walked_bytes <= limits.max_context_bytes; ++s) {
    if (cache->entry_of_state_[s] < 0) continue;
    const std::vector<int32_t>& ctx = contexts[pda.rule_of(s)];
    const std::vector<int32_t>& uncertain = cache->states_[cache->entry_of_state_[s]].uncertain;
    if (uncertain.empty() || ctx.size() == 1) continue;
    int64_t bytes = 0;
    for (int32_t p : uncertain) bytes += static_cast<int64_t>(vocab.sorted_bytes(p).size());
    for (int32_t t : ctx) {
      RETURN_IF_ERROR(budget->CheckTime());
      walked_bytes += bytes;
      if (walked_bytes > limits.max_context_bytes) break;
      const Stack start = start_of(s, t);
      ContextEntry entry;
      walker.WalkSorted(
          absl::MakeConstSpan(&start, 1), uncertain, &arena, [](int32_t) { return false; },
          [&](int32_t p, TokenVerdict v) {
            if (v == TokenVerdict::kAccepted) entry.extra.push_back(vocab.sorted_id(p));
            if (v == TokenVerdict::kUncertain) entry.uncertain.push_back(p);
          });
      arena.Truncate(0);
      cache->contexts_.emplace(Key(s, t), std::move(entry));
    }
  }
  return cache;
}

TokenMaskCache::View TokenMaskCache::Lookup(int32_t state, int32_t context) const {
  const StateEntry& e = states_[entry_of_state_[state]];
  View view{.accepted = &sets_[e.accepted]};
  if (e.uncertain.empty()) return view;
  auto it = contexts_.find(Key(state, context));
  if (it == contexts_.end()) {
    view.uncertain = e.uncertain;
  } else {
    view.extra = it->second.extra;
    view.uncertain = it->second.uncertain;
  }
  return view;
}

size_t TokenMaskCache::MemoryBytes() const {
  size_t total = sizeof(*this) + entry_of_state_.size() * 4;
  for (const StateEntry& e : states_) total += sizeof(e) + e.uncertain.capacity() * 4;
  for (const TokenSet& set : sets_) total += sizeof(set) + set.MemoryBytes();
  for (const auto& [key, e] : contexts_) total += 16 + sizeof(e) + (e.extra.capacity() + e.uncertain.capacity()) * 4;
  return total;
}

int64_t TokenMaskCache::num_uncertain() const {
  int64_t total = 0;
  for (const StateEntry& e : states_) total += static_cast<int64_t>(e.uncertain.size());
  return total;
}

}  // namespace moeserve::structured

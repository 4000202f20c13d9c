#include "server/structured/stack_arena.h"

#include <utility>

namespace moeserve::structured {

int32_t StackArena::Intern(int32_t state, int32_t parent) {
  const uint64_t key = StackKey(Stack{state, parent});
  auto [it, inserted] = index_.try_emplace(key, static_cast<int32_t>(nodes_.size()));
  if (inserted) nodes_.push_back(Node{state, parent});
  return it->second;
}

void StackArena::Truncate(int32_t size) {
  for (int32_t id = size; id < static_cast<int32_t>(nodes_.size()); ++id) {
    index_.erase(StackKey(Stack{nodes_[id].state, nodes_[id].parent}));
  }
  if (size < static_cast<int32_t>(nodes_.size())) nodes_.resize(size);
}

void StackArena::Compact(std::vector<std::vector<Stack>*> roots) {
  std::vector<int32_t> remap(nodes_.size(), -1);
  std::vector<Node> kept;
  // Parents have smaller ids than their children (a node is interned after its parent), so one
  // pass in id order after marking keeps that order.
  std::vector<bool> live(nodes_.size(), false);
  for (const std::vector<Stack>* set : roots) {
    for (const Stack& s : *set) {
      for (int32_t p = s.parent; p >= 0 && !live[p]; p = nodes_[p].parent) live[p] = true;
    }
  }
  index_.clear();
  for (size_t id = 0; id < nodes_.size(); ++id) {
    if (!live[id]) continue;
    Node n = nodes_[id];
    if (n.parent >= 0) n.parent = remap[n.parent];
    remap[id] = static_cast<int32_t>(kept.size());
    index_.emplace(StackKey(Stack{n.state, n.parent}), remap[id]);
    kept.push_back(n);
  }
  nodes_ = std::move(kept);
  for (std::vector<Stack>* set : roots) {
    for (Stack& s : *set) {
      if (s.parent >= 0) s.parent = remap[s.parent];
    }
  }
}

void PdaStepper::Closure(absl::Span<const Stack> seeds, StackArena* arena, std::vector<Stack>* out, Flags* flags) {
  out->clear();
  const Pda& pda = *pda_;
  if (seeds.size() == 1 && pda.simple(seeds[0].state)) {
    out->push_back(seeds[0]);
    return;
  }
  seen_.clear();
  work_.assign(seeds.begin(), seeds.end());
  for (const Stack& s : seeds) seen_.insert(StackKey(s));
  auto push = [&](Stack s) {
    if (seen_.insert(StackKey(s)).second) work_.push_back(s);
  };
  while (!work_.empty()) {
    const Stack s = work_.back();
    work_.pop_back();
    if (pda.scans(s.state)) out->push_back(s);
    for (const Pda::Call& c : pda.calls(s.state)) {
      push(Stack{c.rule_start, arena->Intern(c.resume, s.parent)});
    }
    if (pda.accepts(s.state)) {
      if (s.parent == kBottom) {
        flags->accepted = true;
      } else if (s.parent == kOpen) {
        flags->escaped = true;
      } else {
        const StackArena::Node& n = arena->node(s.parent);
        push(Stack{n.state, n.parent});
      }
    }
  }
}

bool PdaStepper::Advance(absl::Span<const Stack> in, uint8_t byte, StackArena* arena, std::vector<Stack>* out,
                         Flags* flags) {
  stepped_.clear();
  for (const Stack& s : in) {
    const int32_t t = pda_->Next(s.state, byte);
    if (t >= 0) stepped_.push_back(Stack{t, s.parent});
  }
  if (stepped_.empty()) {
    out->clear();
    return false;
  }
  Closure(stepped_, arena, out, flags);
  return true;
}

}  // namespace moeserve::structured

#ifndef MOESERVE_SERVER_STRUCTURED_STACK_ARENA_H_
#define MOESERVE_SERVER_STRUCTURED_STACK_ARENA_H_

// Matcher configurations over a Pda: sets of stacks, with the frames below each top shared in an
// arena (hash-consed, so equal stacks have equal ids and a set deduplicates by (state, parent)).
//
// A Stack is its top state and the node below it: a node is a frame (the state to resume in) and
// its own parent. Two parents are special: kBottom, the root frame (completing it completes the
// grammar), and kOpen, an unknown context used when masks are precomputed (completing it
// "escapes": what follows depends on frames the precomputation does not know).
//
// PdaStepper holds the scratch of the closure (epsilon moves: calls push, completed rules pop)
// and of byte steps. Neither class is thread safe; each matcher and each precomputation owns one.

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/types/span.h"
#include "server/structured/pda.h"

namespace moeserve::structured {

inline constexpr int32_t kBottom = -1;
inline constexpr int32_t kOpen = -2;

struct Stack {
  int32_t state = 0;
  int32_t parent = kBottom;
  friend bool operator==(const Stack&, const Stack&) = default;
};

inline uint64_t StackKey(const Stack& s) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(s.state)) << 32) | static_cast<uint32_t>(s.parent);
}

class StackArena {
 public:
  struct Node {
    int32_t state;   // resume state
    int32_t parent;  // node id, kBottom or kOpen
  };

  // The id of the node (state, parent), created on first use.
  int32_t Intern(int32_t state, int32_t parent);
  const Node& node(int32_t id) const { return nodes_[id]; }
  int32_t size() const { return static_cast<int32_t>(nodes_.size()); }
  // Forgets the nodes with ids >= size (scratch stacks of a mask computation).
  void Truncate(int32_t size);
  // Keeps only the nodes reachable from `roots` (renumbered; every stack in `roots` is rewritten).
  void Compact(std::vector<std::vector<Stack>*> roots);

 private:
  std::vector<Node> nodes_;
  absl::flat_hash_map<uint64_t, int32_t> index_;
};

class PdaStepper {
 public:
  explicit PdaStepper(const Pda* pda) : pda_(pda) {}

  const Pda& pda() const { return *pda_; }

  struct Flags {
    bool accepted = false;  // a stack completed the root rule
    bool escaped = false;   // a stack completed a frame whose parent is kOpen
  };

  // Expands `seeds` by calls and completions; `out` gets the stacks whose top reads bytes
  // (deduplicated). `seeds` and `out` must differ.
  void Closure(absl::Span<const Stack> seeds, StackArena* arena, std::vector<Stack>* out, Flags* flags);

  // Reads `byte` from every stack of `in` (their own byte edges only), then takes the closure.
  // Returns whether some stack read the byte (the stacks of `out` may still be empty: a read that
  // completed the grammar). `in` and `out` must differ.
  bool Advance(absl::Span<const Stack> in, uint8_t byte, StackArena* arena, std::vector<Stack>* out, Flags* flags);

 private:
  const Pda* pda_;
  std::vector<Stack> work_;
  std::vector<Stack> stepped_;
  absl::flat_hash_set<uint64_t> seen_;
};

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_STACK_ARENA_H_

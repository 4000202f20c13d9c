#ifndef MOESERVE_SERVER_STRUCTURED_PDA_H_
#define MOESERVE_SERVER_STRUCTURED_PDA_H_

// Pda: a grammar compiled to a byte-level pushdown automaton. Each rule is a minimal DFA over
// bytes and rule calls; all states share one numbering. A matcher configuration is a set of stacks
// (stack_arena.h): the top frame is a state, the frames below are the states to resume in when
// the rule above completes.
//
// BuildPda runs, in order: reachability; inlining of non-recursive rules small enough to copy
// (and of recursive rules referenced once), so that most grammars become one DFA and regular ones
// need no stack; per-rule NFA -> DFA; removal of rules without a finite derivation (an error when
// the root has none, e.g. a $ref cycle without a base case); a left-recursion check (an error:
// the matcher would push forever); DFA minimization; and byte classes (bytes no state tells
// apart share a transition-table column).
//
// Immutable after construction; safe for concurrent use.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/structured/fsm.h"
#include "server/structured/grammar.h"

namespace moeserve::structured {

struct PdaLimits {
  int64_t max_states = 2'000'000;               // NFA + DFA states charged while building
  absl::Duration max_time = absl::Seconds(10);  // CPU time (see CompileBudget)
  int64_t max_inline_states = 4096;             // inline a rule into a use when size x copies <= this
};

class Pda {
 public:
  struct Call {
    int32_t rule_start = 0;  // first state of the called rule
    int32_t resume = 0;      // caller's state after the call
  };

  int32_t num_states() const { return static_cast<int32_t>(rule_of_.size()); }
  int32_t num_rules() const { return static_cast<int32_t>(rule_start_.size()); }
  int32_t root_start() const { return rule_start_[root_]; }
  int32_t root_rule() const { return root_; }
  int32_t rule_start(int32_t rule) const { return rule_start_[rule]; }
  int32_t rule_of(int32_t state) const { return rule_of_[state]; }
  const std::string& rule_name(int32_t rule) const { return rule_names_[rule]; }

  bool accepts(int32_t state) const { return flags_[state] & kAccept; }
  // Has at least one byte transition.
  bool scans(int32_t state) const { return row_[state] >= 0; }
  // Scans, calls nothing and does not accept: a stack here needs no closure after a byte.
  bool simple(int32_t state) const { return flags_[state] & kSimple; }
  absl::Span<const Call> calls(int32_t state) const {
    return absl::MakeConstSpan(calls_).subspan(call_begin_[state], call_begin_[state + 1] - call_begin_[state]);
  }
  // The state after reading `byte` in `state`, -1 when none.
  int32_t Next(int32_t state, uint8_t byte) const {
    const int32_t row = row_[state];
    return row < 0 ? -1 : table_[static_cast<size_t>(row) * num_classes_ + byte_class_[byte]];
  }

  int32_t num_byte_classes() const { return num_classes_; }
  size_t MemoryBytes() const;
  // One line per state: rule, flags, byte edges and calls (tests and debugging).
  std::string DebugString() const;

 private:
  friend absl::StatusOr<Pda> BuildPda(const Grammar&, const PdaLimits&);
  static constexpr uint8_t kAccept = 1, kSimple = 2;

  int32_t root_ = 0;
  std::vector<int32_t> rule_start_;
  std::vector<std::string> rule_names_;
  std::vector<int32_t> rule_of_;
  std::vector<uint8_t> flags_;
  std::vector<int32_t> row_;    // per state: transition-table row, -1 if it scans nothing
  std::vector<int32_t> table_;  // [rows, num_classes_] -> state or -1
  std::array<uint8_t, 256> byte_class_{};
  int32_t num_classes_ = 1;
  std::vector<int32_t> call_begin_;  // [num_states + 1]
  std::vector<Call> calls_;
};

// Errors: InvalidArgument for grammars that cannot be matched (undefined rule, no finite
// derivation of the root, left recursion), ResourceExhausted when a limit is exceeded.
absl::StatusOr<Pda> BuildPda(const Grammar& grammar, const PdaLimits& limits = {});

// Exposed for tests: the IR passes BuildPda runs before lowering.
// Removes rules not reachable from the root (renumbering the others).
void RemoveUnreachableRules(Grammar* grammar);
// Inlines rule references as described above; returns the number of references replaced.
int64_t InlineRules(Grammar* grammar, int64_t max_inline_states);

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_PDA_H_

#ifndef MOESERVE_SERVER_STRUCTURED_FSM_H_
#define MOESERVE_SERVER_STRUCTURED_FSM_H_

// Byte-level finite automata for one grammar rule. An expression is lowered to an NFA (Thompson
// construction: code point classes become UTF-8 byte-range sequences, rule references become call
// edges), then determinized: the result is deterministic on bytes and on call symbols (one target
// per byte and per called rule). A state may still both read a byte and call a rule that starts
// with that byte; the pushdown matcher explores both.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/structured/grammar.h"

namespace moeserve::structured {

// Size and time limits of one compilation, charged by every stage. Errors are ResourceExhausted
// with a message naming the limit; the constraint compiler reports them as InvalidArgument.
// Time is the compiling thread's CPU time (a loaded machine must not turn a legitimate constraint
// into an error), with a wall-clock backstop of six times as much. Not thread safe.
class CompileBudget {
 public:
  CompileBudget(int64_t max_states, absl::Duration max_time);

  // Charges `states` automaton states (NFA or DFA) against the size limit.
  absl::Status ChargeStates(int64_t states);
  // Checks the deadline; cheap enough to call every few hundred steps.
  absl::Status CheckTime();
  int64_t states_charged() const { return states_; }

 private:
  int64_t max_states_;
  int64_t states_ = 0;
  absl::Duration max_time_;
  absl::Duration cpu_start_;
  absl::Time wall_deadline_;
};

struct ByteEdge {
  uint8_t lo = 0;
  uint8_t hi = 0;
  int32_t target = 0;
};

struct CallEdge {
  int32_t rule = 0;
  int32_t target = 0;  // the state the caller resumes in after the rule
};

// An automaton whose start state is 0.
struct Fsm {
  struct State {
    std::vector<ByteEdge> bytes;  // sorted by lo, disjoint (in a DFA)
    std::vector<CallEdge> calls;  // sorted by rule, one per rule (in a DFA)
    std::vector<int32_t> eps;     // NFA only
    bool accept = false;
  };
  std::vector<State> states;
};

// The Thompson NFA of `expr`; state 0 starts, exactly one state accepts.
absl::StatusOr<Fsm> BuildNfa(const Expr& expr, CompileBudget* budget);

// Subset construction: a DFA (no eps edges) accepting the same strings and call sequences.
absl::StatusOr<Fsm> Determinize(const Fsm& nfa, CompileBudget* budget);

// The product of two DFAs without calls: accepts the strings both accept. States that cannot
// reach acceptance are kept (trimmed later).
absl::StatusOr<Fsm> IntersectDfas(const Fsm& a, const Fsm& b, CompileBudget* budget);

// The DFA of a kFreeText expression (grammar.h): an Aho-Corasick automaton over its words (the
// children and `text`), one state per prefix of a word that contains no word, plus one accepting
// end state when `text` is set (reached when `text` completes first). Errors: InvalidArgument for
// an empty word or words longer than kMaxFreeTextBytes in total.
inline constexpr int64_t kMaxFreeTextBytes = 4096;
absl::StatusOr<Fsm> FreeTextDfa(const Expr& free_text, CompileBudget* budget);

// Minimal DFA (Moore partition refinement): states with the same future over bytes and calls
// merge. REQUIRES: `dfa` is deterministic and every state is reachable.
Fsm Minimize(const Fsm& dfa);

// The UTF-8 encodings of the code points in [lo, hi] as sequences of byte ranges: every sequence
// matches a contiguous set of encodings, and together they match exactly the range (surrogates
// excluded).
using ByteRangeSeq = std::vector<std::pair<uint8_t, uint8_t>>;
void Utf8Sequences(uint32_t lo, uint32_t hi, std::vector<ByteRangeSeq>* out);

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_FSM_H_

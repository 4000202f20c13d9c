// FreeTextDfa (fsm.h): free text that avoids some words, optionally up to a trigger word, as an
// Aho-Corasick automaton. The trie of the words gives the states (the longest suffix of the text
// read so far that is a prefix of a word); failure links complete them into a DFA on all 256 bytes.
// The first position where some word completes ends the text: at the end state when the word is
// the trigger (and no avoided word completes there too), nowhere otherwise.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/structured/fsm.h"

namespace moeserve::structured {

absl::StatusOr<Fsm> FreeTextDfa(const Expr& e, CompileBudget* budget) {
  std::vector<std::string_view> avoid;
  int64_t total = static_cast<int64_t>(e.text.size());
  for (const Expr& word : e.children) {
    if (word.kind != Expr::Kind::kLiteral || word.text.empty()) {
      return absl::InvalidArgumentError("grammar: free text can only avoid non-empty literal words");
    }
    avoid.push_back(word.text);
    total += static_cast<int64_t>(word.text.size());
  }
  if (total > kMaxFreeTextBytes) {
    return absl::InvalidArgumentError(absl::StrCat("grammar: the words free text avoids or stops at are ", total,
                                                   " bytes; the limit is ", kMaxFreeTextBytes));
  }
  RETURN_IF_ERROR(budget->ChargeStates(total + 2));

  // The trie. Node 0 is the empty prefix.
  struct Node {
    std::array<int32_t, 256> next;  // goto, then (after the BFS) the full DFA transition
    int32_t fail = 0;
    bool ends_avoided = false;  // some avoided word is a suffix of this prefix
    bool ends_until = false;    // `text` is a suffix of this prefix
  };
  std::vector<Node> nodes(1);
  nodes[0].next.fill(-1);
  auto insert = [&](std::string_view word, bool until) {
    int32_t s = 0;
    for (char c : word) {
      const auto b = static_cast<uint8_t>(c);
      if (nodes[s].next[b] < 0) {
        nodes[s].next[b] = static_cast<int32_t>(nodes.size());
        nodes.emplace_back();
        nodes.back().next.fill(-1);
      }
      s = nodes[s].next[b];
    }
    (until ? nodes[s].ends_until : nodes[s].ends_avoided) = true;
  };
  for (std::string_view word : avoid) insert(word, false);
  if (!e.text.empty()) insert(e.text, true);

  // Breadth first: failure links, inherited outputs and the complete transition function.
  std::vector<int32_t> order{0};
  for (int b = 0; b < 256; ++b) {
    int32_t& t = nodes[0].next[b];
    if (t < 0) {
      t = 0;
    } else {
      nodes[t].fail = 0;
      order.push_back(t);
    }
  }
  for (size_t q = 1; q < order.size(); ++q) {
    const int32_t s = order[q];
    Node& node = nodes[s];
    const Node& fail = nodes[node.fail];
    node.ends_avoided = node.ends_avoided || fail.ends_avoided;
    node.ends_until = node.ends_until || fail.ends_until;
    for (int b = 0; b < 256; ++b) {
      int32_t& t = nodes[s].next[b];
      if (t < 0) {
        t = nodes[nodes[s].fail].next[b];
      } else {
        nodes[t].fail = nodes[nodes[s].fail].next[b];
        order.push_back(t);
      }
    }
  }

  // States: nodes where no word has completed (in BFS order, so the root is 0), then the end.
  const bool has_until = !e.text.empty();
  std::vector<int32_t> state_of(nodes.size(), -1);
  int32_t states = 0;
  for (int32_t s : order) {
    if (!nodes[s].ends_avoided && !nodes[s].ends_until) state_of[s] = states++;
  }
  Fsm dfa;
  dfa.states.resize(states + (has_until ? 1 : 0));
  const int32_t end = has_until ? states : -1;
  if (has_until) dfa.states[end].accept = true;
  for (int32_t s : order) {
    const int32_t from = state_of[s];
    if (from < 0) continue;
    Fsm::State& st = dfa.states[from];
    st.accept = !has_until;
    for (int b = 0; b < 256; ++b) {
      const Node& t = nodes[nodes[s].next[b]];
      int32_t target = state_of[nodes[s].next[b]];
      if (target < 0) target = t.ends_until && !t.ends_avoided ? end : -1;
      if (target < 0) continue;
      if (!st.bytes.empty() && st.bytes.back().target == target && st.bytes.back().hi + 1 == b) {
        st.bytes.back().hi = static_cast<uint8_t>(b);
      } else {
        st.bytes.push_back({static_cast<uint8_t>(b), static_cast<uint8_t>(b), target});
      }
    }
  }
  return dfa;
}

}  // namespace moeserve::structured

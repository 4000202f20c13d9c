#include "server/structured/pda.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/status_macros.h"

namespace moeserve::structured {
namespace {

absl::Status CheckReferences(const Grammar& g) {
  const int32_t n = static_cast<int32_t>(g.rules.size());
  if (n == 0 || g.root < 0 || g.root >= n) return absl::InvalidArgumentError("grammar: no root rule");
  absl::Status status;
  std::function<void(const Expr&)> check = [&](const Expr& e) {
    if (e.kind == Expr::Kind::kRuleRef && (e.rule < 0 || e.rule >= n)) {
      status = absl::InvalidArgumentError(absl::StrCat("grammar: reference to undefined rule ", e.rule));
    }
    if (e.kind == Expr::Kind::kRepeat && (e.children.size() != 1 || (e.max >= 0 && e.max < e.min) || e.min < 0)) {
      status = absl::InvalidArgumentError("grammar: malformed repetition");
    }
    for (const Expr& c : e.children) check(c);
  };
  for (const Rule& r : g.rules) check(r.body);
  return status;
}

// Rules with a finite derivation: fixpoint over "accept reachable from the start state through
// byte edges and calls of productive rules".
std::vector<bool> ProductiveRules(const std::vector<Fsm>& fsms) {
  const size_t n = fsms.size();
  std::vector<bool> productive(n, false);
  bool changed = true;
  std::vector<int32_t> work;
  std::vector<bool> seen;
  while (changed) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (productive[r]) continue;
      const Fsm& f = fsms[r];
      seen.assign(f.states.size(), false);
      work.assign(1, 0);
      seen[0] = true;
      bool found = false;
      while (!work.empty() && !found) {
        const int32_t s = work.back();
        work.pop_back();
        if (f.states[s].accept) found = true;
        auto visit = [&](int32_t t) {
          if (!seen[t]) {
            seen[t] = true;
            work.push_back(t);
          }
        };
        for (const ByteEdge& e : f.states[s].bytes) visit(e.target);
        for (const CallEdge& c : f.states[s].calls) {
          if (productive[c.rule]) visit(c.target);
        }
      }
      if (found) {
        productive[r] = true;
        changed = true;
      }
    }
  }
  return productive;
}

// Drops calls of unproductive rules and states that are unreachable or cannot reach acceptance;
// the start state stays 0.
Fsm Trim(const Fsm& f, const std::vector<bool>& productive) {
  const int32_t n = static_cast<int32_t>(f.states.size());
  std::vector<std::vector<int32_t>> reverse(n);
  auto usable = [&](const CallEdge& c) { return static_cast<bool>(productive[c.rule]); };
  for (int32_t s = 0; s < n; ++s) {
    for (const ByteEdge& e : f.states[s].bytes) reverse[e.target].push_back(s);
    for (const CallEdge& c : f.states[s].calls) {
      if (usable(c)) reverse[c.target].push_back(s);
    }
  }
  std::vector<bool> live(n, false);
  std::vector<int32_t> work;
  for (int32_t s = 0; s < n; ++s) {
    if (f.states[s].accept) {
      live[s] = true;
      work.push_back(s);
    }
  }
  while (!work.empty()) {
    const int32_t s = work.back();
    work.pop_back();
    for (int32_t p : reverse[s]) {
      if (!live[p]) {
        live[p] = true;
        work.push_back(p);
      }
    }
  }
  std::vector<int32_t> remap(n, -1);
  std::vector<int32_t> order;
  if (live[0]) {
    remap[0] = 0;
    order.push_back(0);
  }
  for (size_t q = 0; q < order.size(); ++q) {
    const Fsm::State& st = f.states[order[q]];
    auto visit = [&](int32_t t) {
      if (live[t] && remap[t] < 0) {
        remap[t] = static_cast<int32_t>(order.size());
        order.push_back(t);
      }
    };
    for (const ByteEdge& e : st.bytes) visit(e.target);
    for (const CallEdge& c : st.calls) {
      if (usable(c)) visit(c.target);
    }
  }
  Fsm out;
  out.states.resize(order.size());
  for (size_t q = 0; q < order.size(); ++q) {
    const Fsm::State& st = f.states[order[q]];
    Fsm::State& o = out.states[q];
    o.accept = st.accept;
    for (const ByteEdge& e : st.bytes) {
      if (remap[e.target] >= 0) o.bytes.push_back({e.lo, e.hi, remap[e.target]});
    }
    for (const CallEdge& c : st.calls) {
      if (usable(c) && remap[c.target] >= 0) o.calls.push_back({c.rule, remap[c.target]});
    }
  }
  return out;
}

std::vector<bool> NullableRules(const std::vector<Fsm>& fsms) {
  const size_t n = fsms.size();
  std::vector<bool> nullable(n, false);
  bool changed = true;
  while (changed) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (nullable[r]) continue;
      const Fsm& f = fsms[r];
      std::vector<bool> seen(f.states.size(), false);
      std::vector<int32_t> work{0};
      seen[0] = true;
      while (!work.empty()) {
        const int32_t s = work.back();
        work.pop_back();
        if (f.states[s].accept) {
          nullable[r] = true;
          changed = true;
          break;
        }
        for (const CallEdge& c : f.states[s].calls) {
          if (nullable[c.rule] && !seen[c.target]) {
            seen[c.target] = true;
            work.push_back(c.target);
          }
        }
      }
    }
  }
  return nullable;
}

// Left recursion: rule R can call S before reading a byte (through nullable calls). A cycle in
// that relation would make the matcher push frames forever.
absl::Status CheckLeftRecursion(const std::vector<Fsm>& fsms, const std::vector<bool>& nullable,
                                const std::vector<std::string>& names) {
  const size_t n = fsms.size();
  std::vector<std::vector<int32_t>> left(n);
  for (size_t r = 0; r < n; ++r) {
    const Fsm& f = fsms[r];
    std::vector<bool> seen(f.states.size(), false);
    std::vector<int32_t> work{0};
    seen[0] = true;
    while (!work.empty()) {
      const int32_t s = work.back();
      work.pop_back();
      for (const CallEdge& c : f.states[s].calls) {
        left[r].push_back(c.rule);
        if (nullable[c.rule] && !seen[c.target]) {
          seen[c.target] = true;
          work.push_back(c.target);
        }
      }
    }
  }
  // Iterative DFS for a cycle.
  std::vector<int8_t> color(n, 0);  // 0 new, 1 on path, 2 done
  for (size_t start = 0; start < n; ++start) {
    if (color[start] != 0) continue;
    std::vector<std::pair<int32_t, size_t>> path{{static_cast<int32_t>(start), 0}};
    color[start] = 1;
    while (!path.empty()) {
      auto& [r, i] = path.back();
      if (i < left[r].size()) {
        const int32_t t = left[r][i++];
        if (color[t] == 1) {
          std::string cycle = names[t];
          bool in = false;
          for (const auto& [p, unused] : path) {
            if (p == t) in = true;
            if (in && p != t) absl::StrAppend(&cycle, " -> ", names[p]);
          }
          absl::StrAppend(&cycle, " -> ", names[t]);
          return absl::InvalidArgumentError(
              absl::StrCat("grammar: left recursion (", cycle, "): a rule reaches itself before reading any input"));
        }
        if (color[t] == 0) {
          color[t] = 1;
          path.push_back({t, 0});
        }
        continue;
      }
      color[r] = 2;
      path.pop_back();
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Pda> BuildPda(const Grammar& input, const PdaLimits& limits) {
  RETURN_IF_ERROR(CheckReferences(input));
  CompileBudget budget(limits.max_states, limits.max_time);
  Grammar g = input;
  RemoveUnreachableRules(&g);
  InlineRules(&g, limits.max_inline_states);
  RETURN_IF_ERROR(budget.CheckTime());

  const int32_t n = static_cast<int32_t>(g.rules.size());
  std::vector<std::string> names(n);
  std::vector<Fsm> fsms(n);
  for (int32_t r = 0; r < n; ++r) {
    names[r] = g.rules[r].name;
    ASSIGN_OR_RETURN(Fsm nfa, BuildNfa(g.rules[r].body, &budget));
    g.rules[r].body = Expr{};  // free the tree early
    ASSIGN_OR_RETURN(fsms[r], Determinize(nfa, &budget));
  }
  const std::vector<bool> productive = ProductiveRules(fsms);
  if (!productive[g.root]) {
    return absl::InvalidArgumentError(
        absl::StrCat("grammar: rule '", names[g.root],
                     "' has no finite derivation (every alternative recurses without a base case)"));
  }
  for (int32_t r = 0; r < n; ++r) {
    fsms[r] = productive[r] ? Trim(fsms[r], productive) : Fsm{{Fsm::State{}}};
  }
  RETURN_IF_ERROR(CheckLeftRecursion(fsms, NullableRules(fsms), names));
  RETURN_IF_ERROR(budget.CheckTime());
  for (int32_t r = 0; r < n; ++r) {
    if (productive[r]) fsms[r] = Minimize(fsms[r]);
  }
  RETURN_IF_ERROR(budget.CheckTime());

  // Rules still called from the root (trimming dropped calls of unproductive ones).
  std::vector<int32_t> rule_id(n, -1), rules{g.root};
  rule_id[g.root] = 0;
  for (size_t q = 0; q < rules.size(); ++q) {
    for (const Fsm::State& st : fsms[rules[q]].states) {
      for (const CallEdge& c : st.calls) {
        if (rule_id[c.rule] < 0) {
          rule_id[c.rule] = static_cast<int32_t>(rules.size());
          rules.push_back(c.rule);
        }
      }
    }
  }

  Pda pda;
  pda.root_ = 0;
  int32_t total = 0;
  for (int32_t r : rules) {
    pda.rule_start_.push_back(total);
    pda.rule_names_.push_back(names[r]);
    total += static_cast<int32_t>(fsms[r].states.size());
  }
  // Byte classes: bytes with identical columns (target per state) share one.
  std::vector<std::vector<int32_t>> column(256);
  for (size_t k = 0; k < rules.size(); ++k) {
    const Fsm& f = fsms[rules[k]];
    const int32_t base = pda.rule_start_[k];
    for (size_t s = 0; s < f.states.size(); ++s) {
      for (const ByteEdge& e : f.states[s].bytes) {
        for (int b = e.lo; b <= e.hi; ++b) {
          column[b].push_back(base + static_cast<int32_t>(s));
          column[b].push_back(base + e.target);
        }
      }
    }
  }
  absl::flat_hash_map<std::vector<int32_t>, int32_t> class_of_column;
  for (int b = 0; b < 256; ++b) {
    auto [it, inserted] = class_of_column.try_emplace(column[b], static_cast<int32_t>(class_of_column.size()));
    pda.byte_class_[b] = static_cast<uint8_t>(it->second);
  }
  pda.num_classes_ = static_cast<int32_t>(class_of_column.size());
  column.clear();

  pda.rule_of_.resize(total);
  pda.flags_.assign(total, 0);
  pda.row_.assign(total, -1);
  pda.call_begin_.assign(total + 1, 0);
  int32_t rows = 0;
  for (size_t k = 0; k < rules.size(); ++k) {
    const Fsm& f = fsms[rules[k]];
    const int32_t base = pda.rule_start_[k];
    for (size_t s = 0; s < f.states.size(); ++s) {
      const Fsm::State& st = f.states[s];
      const int32_t id = base + static_cast<int32_t>(s);
      pda.rule_of_[id] = static_cast<int32_t>(k);
      if (st.accept) pda.flags_[id] |= Pda::kAccept;
      if (!st.bytes.empty()) {
        pda.row_[id] = rows++;
        pda.table_.resize(static_cast<size_t>(rows) * pda.num_classes_, -1);
        int32_t* row = &pda.table_[static_cast<size_t>(pda.row_[id]) * pda.num_classes_];
        for (const ByteEdge& e : st.bytes) {
          for (int b = e.lo; b <= e.hi; ++b) row[pda.byte_class_[b]] = base + e.target;
        }
      }
      for (const CallEdge& c : st.calls) {
        pda.calls_.push_back({pda.rule_start_[rule_id[c.rule]], base + c.target});
      }
      pda.call_begin_[id + 1] = static_cast<int32_t>(pda.calls_.size());
      if (!st.bytes.empty() && st.calls.empty() && !st.accept) pda.flags_[id] |= Pda::kSimple;
    }
  }
  return pda;
}

size_t Pda::MemoryBytes() const {
  return sizeof(Pda) + rule_start_.size() * 4 + rule_of_.size() * 4 + flags_.size() + row_.size() * 4 +
         table_.size() * 4 + call_begin_.size() * 4 + calls_.size() * sizeof(Call);
}

std::string Pda::DebugString() const {
  std::string out;
  for (int32_t s = 0; s < num_states(); ++s) {
    absl::StrAppendFormat(&out, "%d [%s]%s:", s, rule_names_[rule_of_[s]], accepts(s) ? " accept" : "");
    if (scans(s)) {
      int lo = -1, target = -1;
      for (int b = 0; b <= 256; ++b) {
        const int t = b < 256 ? Next(s, static_cast<uint8_t>(b)) : -2;
        if (t != target || b == 256) {
          if (target >= 0) absl::StrAppendFormat(&out, " %02x-%02x->%d", lo, b - 1, target);
          lo = b;
          target = t;
        }
      }
    }
    for (const Call& c : calls(s)) {
      absl::StrAppendFormat(&out, " call %s->%d", rule_names_[rule_of_[c.rule_start]], c.resume);
    }
    out += '\n';
  }
  return out;
}

}  // namespace moeserve::structured

// The IR passes run before lowering: reachability and inlining (declared in pda.h).

#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "server/structured/pda.h"

namespace moeserve::structured {
namespace {

// Inlined bodies nest expressions; deeper trees would make the recursive lowering risky.
constexpr int32_t kMaxInlinedDepth = 600;
constexpr int64_t kSaturate = int64_t{1} << 40;

int64_t SatAdd(int64_t a, int64_t b) { return std::min(kSaturate, a + b); }
int64_t SatMul(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  return a > kSaturate / b ? kSaturate : std::min(kSaturate, a * b);
}

// Copies of the body that the Thompson construction makes for a repetition.
int64_t Copies(const Expr& e) { return e.max < 0 ? int64_t{e.min} + 1 : int64_t{e.max}; }

// Estimated NFA states and tree depth of an expression (rule references count one state).
struct Shape {
  int64_t size = 0;
  int32_t depth = 0;
};

Shape ShapeOf(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kEmpty: return {1, 1};
    case Expr::Kind::kLiteral: return {static_cast<int64_t>(e.text.size()) + 1, 1};
    case Expr::Kind::kClass: return {static_cast<int64_t>(e.set.size()) * 4 + 2, 1};
    case Expr::Kind::kRuleRef: return {2, 1};
    case Expr::Kind::kSequence:
    case Expr::Kind::kChoice:
    case Expr::Kind::kIntersect: {
      Shape s{2, 0};
      for (const Expr& c : e.children) {
        const Shape cs = ShapeOf(c);
        s.size = SatAdd(s.size, cs.size + 2);
        s.depth = std::max(s.depth, cs.depth);
      }
      s.depth += 1;
      return s;
    }
    case Expr::Kind::kFreeText: {
      int64_t size = static_cast<int64_t>(e.text.size()) + 2;
      for (const Expr& word : e.children) size = SatAdd(size, static_cast<int64_t>(word.text.size()));
      return {size, 1};
    }
    case Expr::Kind::kRepeat: {
      const Shape cs = ShapeOf(e.children[0]);
      return {SatAdd(SatMul(cs.size, Copies(e)), 2), cs.depth + 1};
    }
  }
  return {};
}

void ForEachRef(const Expr& e, const std::function<void(int32_t)>& fn) {
  if (e.kind == Expr::Kind::kRuleRef) fn(e.rule);
  for (const Expr& c : e.children) ForEachRef(c, fn);
}

// Strongly connected components of the rule call graph, callees before callers (Tarjan,
// iterative). Returns the component of each rule and the order.
struct Components {
  std::vector<int32_t> component;
  std::vector<int32_t> order;   // rules, callee components first
  std::vector<bool> recursive;  // per rule: in a cycle (or calls itself)
};

Components FindComponents(const Grammar& g) {
  const int32_t n = static_cast<int32_t>(g.rules.size());
  std::vector<std::vector<int32_t>> edges(n);
  for (int32_t r = 0; r < n; ++r) {
    absl::flat_hash_set<int32_t> seen;
    ForEachRef(g.rules[r].body, [&](int32_t t) {
      if (seen.insert(t).second) edges[r].push_back(t);
    });
  }
  Components out;
  out.component.assign(n, -1);
  out.recursive.assign(n, false);
  std::vector<int32_t> index(n, -1), low(n, 0), stack;
  std::vector<bool> on_stack(n, false);
  int32_t next_index = 0, next_component = 0;
  struct Frame {
    int32_t rule;
    size_t edge;
  };
  for (int32_t start = 0; start < n; ++start) {
    if (index[start] >= 0) continue;
    std::vector<Frame> frames{{start, 0}};
    index[start] = low[start] = next_index++;
    stack.push_back(start);
    on_stack[start] = true;
    while (!frames.empty()) {
      Frame& f = frames.back();
      if (f.edge < edges[f.rule].size()) {
        const int32_t t = edges[f.rule][f.edge++];
        if (index[t] < 0) {
          index[t] = low[t] = next_index++;
          stack.push_back(t);
          on_stack[t] = true;
          frames.push_back({t, 0});
        } else if (on_stack[t]) {
          low[f.rule] = std::min(low[f.rule], index[t]);
        }
        continue;
      }
      const int32_t r = f.rule;
      frames.pop_back();
      if (!frames.empty()) low[frames.back().rule] = std::min(low[frames.back().rule], low[r]);
      if (low[r] != index[r]) continue;
      std::vector<int32_t> members;
      while (true) {
        const int32_t m = stack.back();
        stack.pop_back();
        on_stack[m] = false;
        out.component[m] = next_component;
        members.push_back(m);
        if (m == r) break;
      }
      ++next_component;
      const bool self_loop = std::find(edges[r].begin(), edges[r].end(), r) != edges[r].end();
      for (int32_t m : members) {
        out.recursive[m] = members.size() > 1 || self_loop;
        out.order.push_back(m);
      }
    }
  }
  return out;
}

// Replaces references in `e` (inside rule `self`) that `should_inline(rule, copies, depth)`
// approves by the referenced rule's body.
int64_t Substitute(Expr* e, const Grammar& g, int64_t copies, int32_t depth,
                   const std::function<bool(int32_t, int64_t, int32_t)>& should_inline) {
  if (e->kind == Expr::Kind::kRuleRef) {
    if (!should_inline(e->rule, copies, depth)) return 0;
    *e = g.rules[e->rule].body;
    return 1;
  }
  int64_t count = 0;
  const int64_t child_copies = e->kind == Expr::Kind::kRepeat ? SatMul(copies, Copies(*e)) : copies;
  for (Expr& c : e->children) count += Substitute(&c, g, child_copies, depth + 1, should_inline);
  return count;
}

}  // namespace

void RemoveUnreachableRules(Grammar* g) {
  const int32_t n = static_cast<int32_t>(g->rules.size());
  std::vector<int32_t> remap(n, -1);
  std::vector<int32_t> work{g->root};
  std::vector<int32_t> kept;
  remap[g->root] = 0;
  kept.push_back(g->root);
  while (!work.empty()) {
    const int32_t r = work.back();
    work.pop_back();
    ForEachRef(g->rules[r].body, [&](int32_t t) {
      if (remap[t] < 0) {
        remap[t] = static_cast<int32_t>(kept.size());
        kept.push_back(t);
        work.push_back(t);
      }
    });
  }
  std::vector<Rule> rules;
  rules.reserve(kept.size());
  for (int32_t r : kept) rules.push_back(std::move(g->rules[r]));
  std::function<void(Expr*)> renumber = [&](Expr* e) {
    if (e->kind == Expr::Kind::kRuleRef) e->rule = remap[e->rule];
    for (Expr& c : e->children) renumber(&c);
  };
  for (Rule& r : rules) renumber(&r.body);
  g->rules = std::move(rules);
  g->root = 0;
}

int64_t InlineRules(Grammar* g, int64_t max_inline_states) {
  const int32_t n = static_cast<int32_t>(g->rules.size());
  const Components comps = FindComponents(*g);
  // Non-recursive rules, callees first, so an inlined body is already final.
  std::vector<Shape> shape(n);
  for (int32_t r = 0; r < n; ++r) shape[r] = ShapeOf(g->rules[r].body);
  std::vector<int64_t> sites(n, 0);
  for (int32_t r = 0; r < n; ++r) ForEachRef(g->rules[r].body, [&](int32_t t) { ++sites[t]; });
  int64_t replaced = 0;
  for (int32_t r : comps.order) {
    replaced += Substitute(&g->rules[r].body, *g, 1, 0, [&](int32_t b, int64_t copies, int32_t depth) {
      if (b == r || comps.recursive[b] || b == g->root) return false;
      if (depth + shape[b].depth > kMaxInlinedDepth) return false;
      const int64_t cost = SatMul(shape[b].size, copies);
      return cost <= max_inline_states || (sites[b] == 1 && copies == 1 && shape[b].size <= (int64_t{1} << 20));
    });
    shape[r] = ShapeOf(g->rules[r].body);
  }
  RemoveUnreachableRules(g);
  // Recursive rules referenced from exactly one place (not themselves, copied once) move into
  // their referrer: a cycle value -> object -> value becomes one rule calling itself.
  for (int iteration = 0; iteration < 4 * static_cast<int>(g->rules.size()) + 4; ++iteration) {
    const int32_t m = static_cast<int32_t>(g->rules.size());
    std::vector<int32_t> count(m, 0), referrer(m, -1);
    for (int32_t r = 0; r < m; ++r) {
      ForEachRef(g->rules[r].body, [&](int32_t t) {
        ++count[t];
        referrer[t] = r;
      });
    }
    int64_t done = 0;
    for (int32_t b = 0; b < m && done == 0; ++b) {
      if (b == g->root || count[b] != 1 || referrer[b] == b) continue;
      const Shape body = ShapeOf(g->rules[b].body);
      done = Substitute(&g->rules[referrer[b]].body, *g, 1, 0, [&](int32_t t, int64_t copies, int32_t depth) {
        return t == b && copies == 1 && depth + body.depth <= kMaxInlinedDepth;
      });
    }
    if (done == 0) break;  // no single reference outside repetitions left
    replaced += done;
    RemoveUnreachableRules(g);
  }
  return replaced;
}

}  // namespace moeserve::structured

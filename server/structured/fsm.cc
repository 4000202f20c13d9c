#include "server/structured/fsm.h"

#include <time.h>

#include <algorithm>
#include <numeric>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace moeserve::structured {

absl::Status CompileBudget::ChargeStates(int64_t states) {
  states_ += states;
  if (states_ > max_states_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the constraint needs more than ", max_states_, " automaton states (the size limit)"));
  }
  return absl::OkStatus();
}

namespace {
absl::Duration ThreadCpuTime() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}
}  // namespace

CompileBudget::CompileBudget(int64_t max_states, absl::Duration max_time)
    : max_states_(max_states),
      max_time_(max_time),
      cpu_start_(ThreadCpuTime()),
      wall_deadline_(absl::Now() + 6 * max_time) {}

absl::Status CompileBudget::CheckTime() {
  if (ThreadCpuTime() - cpu_start_ > max_time_ || absl::Now() > wall_deadline_) {
    return absl::ResourceExhaustedError(absl::StrCat("compiling the constraint took longer than ",
                                                     absl::FormatDuration(max_time_), " (the time limit)"));
  }
  return absl::OkStatus();
}

// ---- UTF-8 ranges ----

namespace {

int Utf8Length(uint32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }

void Encode(uint32_t c, uint8_t* bytes) {
  std::string s;
  AppendUtf8(c, &s);
  for (size_t i = 0; i < s.size(); ++i) bytes[i] = static_cast<uint8_t>(s[i]);
}

// [lo, hi] with both ends of the same encoded length.
void SameLength(uint32_t lo, uint32_t hi, std::vector<ByteRangeSeq>* out) {
  const int n = Utf8Length(lo);
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;  // the last i continuation bytes
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        SameLength(lo, lo | m, out);
        SameLength((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        SameLength(lo, (hi & ~m) - 1, out);
        SameLength(hi & ~m, hi, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  Encode(lo, a);
  Encode(hi, b);
  ByteRangeSeq seq;
  for (int i = 0; i < n; ++i) seq.emplace_back(a[i], b[i]);
  out->push_back(std::move(seq));
}

}  // namespace

void Utf8Sequences(uint32_t lo, uint32_t hi, std::vector<ByteRangeSeq>* out) {
  static constexpr uint32_t kBounds[] = {0x7F, 0x7FF, 0xFFFF, kMaxCodepoint};
  for (const CodepointRange& r : Canonicalize({{lo, hi}})) {  // drops surrogates
    uint32_t start = r.lo;
    for (uint32_t bound : kBounds) {
      if (start > r.hi) break;
      if (start > bound) continue;
      const uint32_t end = std::min(bound, r.hi);
      SameLength(start, end, out);
      start = end + 1;
    }
  }
}

// ---- Thompson construction ----

namespace {

class NfaBuilder {
 public:
  explicit NfaBuilder(CompileBudget* budget) : budget_(budget) {}

  absl::StatusOr<Fsm> Build(const Expr& expr) {
    const int32_t start = NewState();
    ASSIGN_OR_RETURN(const int32_t end, Lower(expr, start));
    fsm_.states[end].accept = true;
    RETURN_IF_ERROR(status_);
    return std::move(fsm_);
  }

 private:
  int32_t NewState() {
    if (status_.ok() && (fsm_.states.size() & 1023) == 0) {
      status_ = budget_->ChargeStates(1024);
      if (status_.ok()) status_ = budget_->CheckTime();
    }
    fsm_.states.emplace_back();
    return static_cast<int32_t>(fsm_.states.size()) - 1;
  }

  // Adds the fragment of `e` starting at `from`; returns its end state.
  absl::StatusOr<int32_t> Lower(const Expr& e, int32_t from) {
    RETURN_IF_ERROR(status_);
    switch (e.kind) {
      case Expr::Kind::kEmpty: return from;
      case Expr::Kind::kLiteral: {
        int32_t s = from;
        for (char c : e.text) {
          const int32_t t = NewState();
          const auto b = static_cast<uint8_t>(c);
          fsm_.states[s].bytes.push_back({b, b, t});
          s = t;
        }
        return s;
      }
      case Expr::Kind::kClass: {
        const int32_t end = NewState();
        std::vector<ByteRangeSeq> seqs;
        for (const CodepointRange& r : e.set) Utf8Sequences(r.lo, r.hi, &seqs);
        for (const ByteRangeSeq& seq : seqs) {
          int32_t s = from;
          for (size_t i = 0; i < seq.size(); ++i) {
            const int32_t t = i + 1 == seq.size() ? end : NewState();
            fsm_.states[s].bytes.push_back({seq[i].first, seq[i].second, t});
            s = t;
          }
        }
        return end;
      }
      case Expr::Kind::kSequence: {
        int32_t s = from;
        for (const Expr& c : e.children) {
          ASSIGN_OR_RETURN(s, Lower(c, s));
        }
        return s;
      }
      case Expr::Kind::kChoice: {
        const int32_t end = NewState();
        for (const Expr& c : e.children) {
          const int32_t branch = NewState();
          fsm_.states[from].eps.push_back(branch);
          ASSIGN_OR_RETURN(const int32_t b_end, Lower(c, branch));
          fsm_.states[b_end].eps.push_back(end);
        }
        return end;
      }
      case Expr::Kind::kRepeat: {
        const Expr& item = e.children[0];
        int32_t s = from;
        for (int32_t i = 0; i < e.min; ++i) {
          ASSIGN_OR_RETURN(s, Lower(item, s));
        }
        if (e.max < 0) {  // a loop: s -> body -> s
          const int32_t loop = NewState();
          fsm_.states[s].eps.push_back(loop);
          ASSIGN_OR_RETURN(const int32_t body_end, Lower(item, loop));
          fsm_.states[body_end].eps.push_back(loop);
          return loop;
        }
        const int32_t end = NewState();
        for (int32_t i = e.min; i < e.max; ++i) {
          fsm_.states[s].eps.push_back(end);
          ASSIGN_OR_RETURN(s, Lower(item, s));
        }
        fsm_.states[s].eps.push_back(end);
        return end;
      }
      case Expr::Kind::kRuleRef: {
        const int32_t t = NewState();
        fsm_.states[from].calls.push_back({e.rule, t});
        return t;
      }
      case Expr::Kind::kIntersect: return LowerIntersection(e, from);
      case Expr::Kind::kFreeText: {
        ASSIGN_OR_RETURN(const Fsm dfa, FreeTextDfa(e, budget_));
        return CopyIn(dfa, from);
      }
    }
    return absl::InternalError("unknown expression kind");
  }

  // Each child becomes a DFA of its own; their product is copied in between `from` and a new end.
  absl::StatusOr<int32_t> LowerIntersection(const Expr& e, int32_t from) {
    std::optional<Fsm> product;
    for (const Expr& c : e.children) {
      ASSIGN_OR_RETURN(Fsm nfa, NfaBuilder(budget_).Build(c));
      for (const Fsm::State& st : nfa.states) {
        if (!st.calls.empty()) {
          return absl::InvalidArgumentError("grammar: an intersection may not reference rules");
        }
      }
      ASSIGN_OR_RETURN(Fsm dfa, Determinize(nfa, budget_));
      if (product.has_value()) {
        ASSIGN_OR_RETURN(dfa, IntersectDfas(*product, dfa, budget_));
      }
      product = std::move(dfa);
    }
    return CopyIn(*product, from);
  }

  // Copies a DFA without calls in between `from` and a new end state; returns the end.
  absl::StatusOr<int32_t> CopyIn(const Fsm& dfa, int32_t from) {
    const int32_t end = NewState();
    const auto base = static_cast<int32_t>(fsm_.states.size());
    for (size_t i = 0; i < dfa.states.size(); ++i) NewState();
    RETURN_IF_ERROR(status_);
    fsm_.states[from].eps.push_back(base);
    for (size_t i = 0; i < dfa.states.size(); ++i) {
      Fsm::State& st = fsm_.states[base + i];
      for (ByteEdge edge : dfa.states[i].bytes) {
        edge.target += base;
        st.bytes.push_back(edge);
      }
      if (dfa.states[i].accept) st.eps.push_back(end);
    }
    return end;
  }

  CompileBudget* budget_;
  Fsm fsm_;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<Fsm> IntersectDfas(const Fsm& a, const Fsm& b, CompileBudget* budget) {
  Fsm out;
  absl::flat_hash_map<uint64_t, int32_t> ids;
  std::vector<std::pair<int32_t, int32_t>> pairs;
  auto intern = [&](int32_t x, int32_t y) {
    const uint64_t key = (static_cast<uint64_t>(x) << 32) | static_cast<uint32_t>(y);
    auto [it, inserted] = ids.try_emplace(key, static_cast<int32_t>(pairs.size()));
    if (inserted) {
      pairs.emplace_back(x, y);
      out.states.emplace_back();
    }
    return it->second;
  };
  intern(0, 0);
  for (size_t q = 0; q < pairs.size(); ++q) {
    if ((q & 255) == 0) {
      RETURN_IF_ERROR(budget->ChargeStates(256));
      RETURN_IF_ERROR(budget->CheckTime());
    }
    const auto [x, y] = pairs[q];
    std::vector<ByteEdge> edges;
    for (const ByteEdge& ea : a.states[x].bytes) {
      for (const ByteEdge& eb : b.states[y].bytes) {
        const uint8_t lo = std::max(ea.lo, eb.lo), hi = std::min(ea.hi, eb.hi);
        if (lo <= hi) edges.push_back({lo, hi, intern(ea.target, eb.target)});
      }
    }
    std::sort(edges.begin(), edges.end(), [](const ByteEdge& l, const ByteEdge& r) { return l.lo < r.lo; });
    out.states[q].bytes = std::move(edges);
    out.states[q].accept = a.states[x].accept && b.states[y].accept;
  }
  return out;
}

absl::StatusOr<Fsm> BuildNfa(const Expr& expr, CompileBudget* budget) { return NfaBuilder(budget).Build(expr); }

// ---- subset construction ----

namespace {

struct VectorHash {
  size_t operator()(const std::vector<int32_t>& v) const { return absl::HashOf(absl::MakeConstSpan(v)); }
};

class Determinizer {
 public:
  // One rule's DFA at most; patterns like (a|b)*a(a|b){40} reach it long before the total limit.
  static constexpr int64_t kMaxDfaStates = 200'000;

  Determinizer(const Fsm& nfa, CompileBudget* budget) : nfa_(nfa), budget_(budget), mark_(nfa.states.size(), 0) {}

  absl::StatusOr<Fsm> Run() {
    std::vector<int32_t> start = Closure({0});
    Intern(std::move(start));
    for (size_t d = 0; d < sets_.size(); ++d) {
      if ((d & 255) == 0) RETURN_IF_ERROR(budget_->CheckTime());
      RETURN_IF_ERROR(Expand(d));
    }
    return std::move(dfa_);
  }

 private:
  std::vector<int32_t> Closure(std::vector<int32_t> seeds) {
    ++epoch_;
    std::vector<int32_t> out;
    std::vector<int32_t> work = std::move(seeds);
    while (!work.empty()) {
      const int32_t s = work.back();
      work.pop_back();
      if (mark_[s] == epoch_) continue;
      mark_[s] = epoch_;
      out.push_back(s);
      for (int32_t t : nfa_.states[s].eps) {
        if (mark_[t] != epoch_) work.push_back(t);
      }
    }
    // Only states with edges or acceptance matter; dropping pure-eps states merges more sets.
    std::vector<int32_t> kept;
    for (int32_t s : out) {
      const Fsm::State& st = nfa_.states[s];
      if (st.accept || !st.bytes.empty() || !st.calls.empty()) kept.push_back(s);
    }
    std::sort(kept.begin(), kept.end());
    return kept;
  }

  int32_t Intern(std::vector<int32_t> set) {
    auto [it, inserted] = ids_.try_emplace(set, static_cast<int32_t>(sets_.size()));
    if (inserted) {
      sets_.push_back(std::move(set));
      dfa_.states.emplace_back();
      status_.Update(budget_->ChargeStates(1));
      if (static_cast<int64_t>(sets_.size()) > kMaxDfaStates && status_.ok()) {
        status_ = absl::ResourceExhaustedError(
            absl::StrCat("a rule's automaton needs more than ", kMaxDfaStates, " states (the size limit)"));
      }
    }
    return it->second;
  }

  absl::Status Expand(size_t d) {
    const std::vector<int32_t> set = sets_[d];  // copy: sets_ grows below
    bool accept = false;
    std::vector<int32_t> points;                     // interval starts
    std::vector<std::pair<int32_t, int32_t>> calls;  // (rule, nfa target)
    for (int32_t s : set) {
      const Fsm::State& st = nfa_.states[s];
      accept = accept || st.accept;
      for (const ByteEdge& e : st.bytes) {
        points.push_back(e.lo);
        points.push_back(e.hi + 1);
      }
      for (const CallEdge& c : st.calls) calls.emplace_back(c.rule, c.target);
    }
    dfa_.states[d].accept = accept;
    std::sort(points.begin(), points.end());
    points.erase(std::unique(points.begin(), points.end()), points.end());
    // Targets of each interval [points[i], points[i+1]).
    std::vector<std::vector<int32_t>> targets(points.empty() ? 0 : points.size() - 1);
    for (int32_t s : set) {
      for (const ByteEdge& e : nfa_.states[s].bytes) {
        auto first = std::lower_bound(points.begin(), points.end(), e.lo) - points.begin();
        for (size_t i = first; i + 1 < points.size() && points[i] <= e.hi; ++i) {
          targets[i].push_back(e.target);
        }
      }
    }
    std::vector<ByteEdge> edges;
    for (size_t i = 0; i < targets.size(); ++i) {
      if (targets[i].empty()) continue;
      const int32_t t = Intern(Closure(std::move(targets[i])));
      RETURN_IF_ERROR(status_);
      const auto lo = static_cast<uint8_t>(points[i]);
      const auto hi = static_cast<uint8_t>(points[i + 1] - 1);
      if (!edges.empty() && edges.back().target == t && edges.back().hi + 1 == lo) {
        edges.back().hi = hi;
      } else {
        edges.push_back({lo, hi, t});
      }
    }
    std::sort(calls.begin(), calls.end());
    std::vector<CallEdge> call_edges;
    for (size_t i = 0; i < calls.size();) {
      size_t j = i;
      std::vector<int32_t> seeds;
      while (j < calls.size() && calls[j].first == calls[i].first) seeds.push_back(calls[j++].second);
      const int32_t t = Intern(Closure(std::move(seeds)));
      RETURN_IF_ERROR(status_);
      call_edges.push_back({calls[i].first, t});
      i = j;
    }
    dfa_.states[d].bytes = std::move(edges);
    dfa_.states[d].calls = std::move(call_edges);
    return absl::OkStatus();
  }

  const Fsm& nfa_;
  CompileBudget* budget_;
  std::vector<uint32_t> mark_;
  uint32_t epoch_ = 0;
  absl::flat_hash_map<std::vector<int32_t>, int32_t, VectorHash> ids_;
  std::vector<std::vector<int32_t>> sets_;
  Fsm dfa_;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<Fsm> Determinize(const Fsm& nfa, CompileBudget* budget) { return Determinizer(nfa, budget).Run(); }

// ---- minimization ----

namespace {

// A partition of [0, n) refinable by marking elements and splitting every touched set into its
// marked and unmarked parts (the smaller part becomes a new set). After Valmari, "Fast brief
// practical DFA minimization" (2012).
class RefinablePartition {
 public:
  explicit RefinablePartition(int32_t n)
      : elems_(n), loc_(n), set_of_(n, 0), first_(n + 1), past_(n + 1), marked_(n + 1, 0) {
    std::iota(elems_.begin(), elems_.end(), 0);
    std::iota(loc_.begin(), loc_.end(), 0);
    num_sets_ = n > 0 ? 1 : 0;
    first_[0] = 0;
    past_[0] = n;
  }

  int32_t num_sets() const { return num_sets_; }
  int32_t set_of(int32_t e) const { return set_of_[e]; }
  int32_t first(int32_t s) const { return first_[s]; }
  int32_t past(int32_t s) const { return past_[s]; }
  int32_t elem(int32_t i) const { return elems_[i]; }

  void Mark(int32_t e) {
    const int32_t s = set_of_[e], i = loc_[e], j = first_[s] + marked_[s];
    if (i < j) return;  // already marked
    elems_[i] = elems_[j];
    loc_[elems_[i]] = i;
    elems_[j] = e;
    loc_[e] = j;
    if (marked_[s]++ == 0) touched_.push_back(s);
  }

  void Split() {
    while (!touched_.empty()) {
      const int32_t s = touched_.back();
      touched_.pop_back();
      const int32_t j = first_[s] + marked_[s];
      if (j == past_[s]) {
        marked_[s] = 0;
        continue;
      }
      const int32_t z = num_sets_++;
      if (marked_[s] <= past_[s] - j) {
        first_[z] = first_[s];
        past_[z] = first_[s] = j;
      } else {
        past_[z] = past_[s];
        first_[z] = past_[s] = j;
      }
      for (int32_t i = first_[z]; i < past_[z]; ++i) set_of_[elems_[i]] = z;
      marked_[s] = marked_[z] = 0;
    }
  }

 private:
  std::vector<int32_t> elems_, loc_, set_of_, first_, past_, marked_;
  std::vector<int32_t> touched_;
  int32_t num_sets_ = 0;
};

}  // namespace

Fsm Minimize(const Fsm& dfa) {
  const int32_t n = static_cast<int32_t>(dfa.states.size());
  if (n <= 1) return dfa;
  // Labels: the rule's byte intervals (points) and 256 + called rule.
  std::vector<int32_t> points;
  for (const Fsm::State& st : dfa.states) {
    for (const ByteEdge& e : st.bytes) {
      points.push_back(e.lo);
      points.push_back(e.hi + 1);
    }
  }
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());
  struct Transition {
    int32_t tail, label, head;
  };
  std::vector<Transition> trans;
  for (int32_t s = 0; s < n; ++s) {
    for (const ByteEdge& e : dfa.states[s].bytes) {
      auto i = std::lower_bound(points.begin(), points.end(), e.lo) - points.begin();
      for (; i + 1 < static_cast<int64_t>(points.size()) && points[i] <= e.hi; ++i) {
        trans.push_back({s, static_cast<int32_t>(i), e.target});
      }
    }
    for (const CallEdge& c : dfa.states[s].calls) {
      trans.push_back({s, 256 + c.rule, c.target});
    }
  }
  const int32_t m = static_cast<int32_t>(trans.size());
  RefinablePartition blocks(n), cords(m);
  for (int32_t s = 0; s < n; ++s) {
    if (dfa.states[s].accept) blocks.Mark(s);
  }
  blocks.Split();
  if (m > 0) {
    std::vector<int32_t> order(m);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return trans[a].label < trans[b].label; });
    for (int32_t i = 0; i < m;) {
      int32_t j = i;
      while (j < m && trans[order[j]].label == trans[order[i]].label) cords.Mark(order[j++]);
      cords.Split();
      i = j;
    }
  }
  // Incoming transitions per state.
  std::vector<int32_t> in_first(n + 1, 0), in_list(m);
  for (const Transition& t : trans) ++in_first[t.head + 1];
  for (int32_t s = 0; s < n; ++s) in_first[s + 1] += in_first[s];
  {
    std::vector<int32_t> fill(in_first.begin(), in_first.end() - 1);
    for (int32_t i = 0; i < m; ++i) in_list[fill[trans[i].head]++] = i;
  }
  int32_t b = 0, c = 0;
  while (c < cords.num_sets()) {
    for (int32_t i = cords.first(c); i < cords.past(c); ++i) blocks.Mark(trans[cords.elem(i)].tail);
    blocks.Split();
    ++c;
    while (b < blocks.num_sets()) {
      for (int32_t i = blocks.first(b); i < blocks.past(b); ++i) {
        const int32_t s = blocks.elem(i);
        for (int32_t j = in_first[s]; j < in_first[s + 1]; ++j) cords.Mark(in_list[j]);
      }
      cords.Split();
      ++b;
    }
  }
  // Renumber blocks so that the start state's block is 0, in first-visit order.
  const int32_t num_blocks = blocks.num_sets();
  std::vector<int32_t> block_id(num_blocks, -1);
  std::vector<int32_t> rep;  // representative state of each new state
  std::vector<int32_t> queue{0};
  block_id[blocks.set_of(0)] = 0;
  rep.push_back(0);
  for (size_t q = 0; q < rep.size(); ++q) {
    const Fsm::State& st = dfa.states[rep[q]];
    auto visit = [&](int32_t target) {
      int32_t& id = block_id[blocks.set_of(target)];
      if (id < 0) {
        id = static_cast<int32_t>(rep.size());
        rep.push_back(target);
      }
    };
    for (const ByteEdge& e : st.bytes) visit(e.target);
    for (const CallEdge& call : st.calls) visit(call.target);
  }
  Fsm out;
  out.states.resize(rep.size());
  for (size_t q = 0; q < rep.size(); ++q) {
    const Fsm::State& st = dfa.states[rep[q]];
    Fsm::State& o = out.states[q];
    o.accept = st.accept;
    for (const ByteEdge& e : st.bytes) {
      const int32_t t = block_id[blocks.set_of(e.target)];
      if (!o.bytes.empty() && o.bytes.back().target == t && o.bytes.back().hi + 1 == e.lo) {
        o.bytes.back().hi = e.hi;
      } else {
        o.bytes.push_back({e.lo, e.hi, t});
      }
    }
    for (const CallEdge& call : st.calls) o.calls.push_back({call.rule, block_id[blocks.set_of(call.target)]});
  }
  return out;
}

}  // namespace moeserve::structured

#include "server/tokenizer/template/interpreter.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/status_macros.h"
#include "server/tokenizer/template/builtins.h"

namespace moeserve::jinja {
namespace {

constexpr char kErrorPrefix[] = "chat template line ";

// Statements and expressions being evaluated inside one another (macro calls included). Bounds
// the interpreter's stack use: the parser limits nesting per template, this limits it across
// macro calls.
constexpr int kMaxNesting = 1500;

// Work units charged per loop iteration, besides its body.
constexpr int64_t kIterationSteps = 4;

using Frame = absl::flat_hash_map<std::string, Value>;

class Renderer {
 public:
  Renderer(const Dict& context, const RenderLimits& limits) : limits_(limits), budget_(limits_) {
    auto root = std::make_shared<Frame>();
    const Dict globals = MakeGlobals();
    for (const auto& [k, v] : globals.entries()) (*root)[k] = v;
    (*root)["namespace"] = MakeNamespaceFunction((*root)["namespace"]);
    for (const auto& [k, v] : context.entries()) (*root)[k] = v;
    frames_.push_back(std::move(root));
  }

  // Namespaces are the only mutable values, so only they can form reference cycles
  // ({% set ns.self = ns %}) or unbounded chains; emptying them all breaks both.
  ~Renderer() {
    for (const Value& ns : namespaces_) ns.as_namespace().attrs = Dict();
  }

  absl::StatusOr<std::string> Run(const NodeList& nodes) {
    RETURN_IF_ERROR(ExecList(nodes));
    return std::move(out_);
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  // Prefixes `status` with the position of `at` unless an inner node already did. Keeps the code:
  // a spent budget, an expired deadline and a cancellation stay what they are.
  template <typename N>
  absl::Status Locate(const N& at, const absl::Status& status) const {
    if (status.ok() || absl::StartsWith(status.message(), kErrorPrefix)) return status;
    return absl::Status(status.code(),
                        absl::StrFormat("chat template line %d, column %d: %s", at.line, at.column, status.message()));
  }
  template <typename N>
  absl::Status Error(const N& at, const std::string& message) const {
    return Locate(at, absl::InvalidArgumentError(message));
  }

  // Counts one level of nesting for as long as it lives.
  class NestingScope {
   public:
    explicit NestingScope(int* nesting) : nesting_(nesting) { ++*nesting_; }
    ~NestingScope() { --*nesting_; }
    NestingScope(const NestingScope&) = delete;
    NestingScope& operator=(const NestingScope&) = delete;

   private:
    int* const nesting_;
  };

  absl::Status Step(const Node& at, int64_t units = 1) {
    if (nesting_ > kMaxNesting) return Error(at, "template evaluation nested too deeply");
    absl::Status status = budget_.Charge(units);
    if (!status.ok()) return Locate(at, status);
    return absl::OkStatus();
  }

  // The namespace() global, recording every namespace it makes for ~Renderer.
  Value MakeNamespaceFunction(const Value& make) {
    return Value::MakeCallable("namespace",
                               [this, make](const CallArgs& args, Budget& budget) -> absl::StatusOr<Value> {
                                 ASSIGN_OR_RETURN(Value ns, make.as_callable().fn(args, budget));
                                 if (ns.is_namespace()) namespaces_.push_back(ns);
                                 return ns;
                               });
  }

  Value Lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      const auto found = (*it)->find(name);
      if (found != (*it)->end()) return found->second;
    }
    return Value::Undefined(absl::StrCat("'", name, "' is undefined"));
  }

  void Bind(const std::string& name, Value value) { (*frames_.back())[name] = std::move(value); }

  absl::Status Emit(const Node& at, std::string_view text) {
    if (out_.size() + text.size() > limits_.max_output_bytes) {
      return Error(
          at, absl::StrCat("rendered prompt exceeds the output size limit of ", limits_.max_output_bytes, " bytes"));
    }
    absl::Status status = budget_.ChargeBytes(text.size());
    if (!status.ok()) return Locate(at, status);
    out_.append(text);
    return absl::OkStatus();
  }

  absl::Status ExecList(const NodeList& nodes) {
    for (const NodePtr& n : nodes) {
      RETURN_IF_ERROR(Exec(*n));
      if (flow_ != Flow::kNormal) return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  // Binds `targets` to `value`, unpacking when there are several.
  absl::Status Assign(const Node& at, const std::vector<std::string>& targets, const Value& value) {
    if (targets.size() == 1) {
      Bind(targets[0], value);
      return absl::OkStatus();
    }
    auto items = Iterate(value, budget_);
    if (!items.ok()) return Locate(at, items.status());
    if (items->size() != targets.size()) {
      return Error(at, absl::StrFormat("cannot unpack %d values into %d names", items->size(), targets.size()));
    }
    for (size_t i = 0; i < targets.size(); ++i) Bind(targets[i], (*items)[i]);
    return absl::OkStatus();
  }

  absl::Status Exec(const Node& n) {
    const NestingScope scope(&nesting_);
    RETURN_IF_ERROR(Step(n));
    switch (n.kind) {
      case Node::Kind::kText: return Emit(n, n.text);
      case Node::Kind::kOutput: {
        ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        auto text = ToStr(v, budget_);
        if (!text.ok()) return Locate(n, text.status());
        return Emit(n, *text);
      }
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches) {
          bool take = cond == nullptr;
          if (!take) {
            ASSIGN_OR_RETURN(Value c, Eval(*cond));
            take = c.Truthy();
          }
          if (take) return ExecList(body);
        }
        return absl::OkStatus();
      case Node::Kind::kFor: return ExecFor(n);
      case Node::Kind::kSet: {
        ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        if (n.attr.empty()) return Assign(n, n.targets, v);
        const Value target = Lookup(n.targets[0]);
        if (!target.is_namespace()) {
          return Error(n, absl::StrCat("cannot assign attribute '", n.attr, "' on '", n.targets[0],
                                       "': it is not a namespace()"));
        }
        target.as_namespace().attrs.Set(n.attr, std::move(v));
        return absl::OkStatus();
      }
      case Node::Kind::kSetBlock: {
        std::string saved = std::move(out_);
        out_.clear();
        const absl::Status status = ExecList(n.body);
        std::string captured = std::move(out_);
        out_ = std::move(saved);
        RETURN_IF_ERROR(status);
        Bind(n.targets[0], Value(std::move(captured)));
        return absl::OkStatus();
      }
      case Node::Kind::kMacro: Bind(n.name, MakeMacro(n)); return absl::OkStatus();
      case Node::Kind::kBreak: flow_ = Flow::kBreak; return absl::OkStatus();
      case Node::Kind::kContinue: flow_ = Flow::kContinue; return absl::OkStatus();
      case Node::Kind::kScope: return ExecList(n.body);
    }
    return Error(n, "unknown statement");
  }

  absl::Status ExecFor(const Node& n) {
    ASSIGN_OR_RETURN(Value iterable, Eval(*n.expr));
    auto all = Iterate(iterable, budget_);
    if (!all.ok()) return Locate(*n.expr, all.status());
    frames_.push_back(std::make_shared<Frame>());
    absl::Status status = RunLoop(n, *all);
    frames_.pop_back();
    flow_ = Flow::kNormal;
    return status;
  }

  absl::Status RunLoop(const Node& n, const List& all) {
    List items;
    if (n.filter != nullptr) {
      for (const Value& item : all) {
        RETURN_IF_ERROR(Assign(n, n.targets, item));
        ASSIGN_OR_RETURN(Value keep, Eval(*n.filter));
        if (keep.Truthy()) items.push_back(item);
      }
    } else {
      items = all;
    }
    if (items.empty()) return ExecList(n.else_body);
    const int64_t length = static_cast<int64_t>(items.size());
    // Made once per loop: the parts of `loop` that do not change between iterations.
    auto index = std::make_shared<int64_t>(0);
    const Value cycle = Value::MakeCallable("cycle", [index](const CallArgs& args, Budget&) -> absl::StatusOr<Value> {
      if (args.positional.empty()) return absl::InvalidArgumentError("no items for cycling given");
      return args.positional[static_cast<size_t>(*index) % args.positional.size()];
    });
    const Value no_previous = Value::Undefined("there is no previous item");
    const Value no_next = Value::Undefined("there is no next item");
    for (int64_t i = 0; i < length; ++i) {
      // An iteration costs steps even when its body is empty: about what building `loop` costs.
      RETURN_IF_ERROR(Step(n, kIterationSteps));
      RETURN_IF_ERROR(Assign(n, n.targets, items[i]));
      *index = i;
      Dict loop;
      loop.Reserve(12);
      loop.Append("index", Value(i + 1));
      loop.Append("index0", Value(i));
      loop.Append("revindex", Value(length - i));
      loop.Append("revindex0", Value(length - i - 1));
      loop.Append("first", Value(i == 0));
      loop.Append("last", Value(i == length - 1));
      loop.Append("length", Value(length));
      loop.Append("depth", Value(int64_t{1}));
      loop.Append("depth0", Value(int64_t{0}));
      loop.Append("previtem", i > 0 ? items[i - 1] : no_previous);
      loop.Append("nextitem", i + 1 < length ? items[i + 1] : no_next);
      loop.Append("cycle", cycle);
      Bind("loop", Value(std::move(loop)));
      RETURN_IF_ERROR(ExecList(n.body));
      if (flow_ == Flow::kBreak) break;
      flow_ = Flow::kNormal;
    }
    return absl::OkStatus();
  }

  Value MakeMacro(const Node& n) {
    const Node* node = &n;
    return Value::MakeCallable(n.name, [this, node](const CallArgs& args, Budget&) -> absl::StatusOr<Value> {
      return CallMacro(*node, args);
    });
  }

  absl::StatusOr<Value> CallMacro(const Node& n, const CallArgs& args) {
    if (call_depth_ >= limits_.max_call_depth) return Error(n, "macro recursion too deep");
    if (args.positional.size() > n.params.size()) {
      return Error(n, absl::StrCat("macro '", n.name, "' takes ", n.params.size(), " arguments"));
    }
    auto frame = std::make_shared<Frame>();
    std::vector<bool> given(n.params.size(), false);
    for (size_t i = 0; i < args.positional.size(); ++i) {
      (*frame)[n.params[i]] = args.positional[i];
      given[i] = true;
    }
    for (const auto& [key, value] : args.named) {
      size_t i = 0;
      while (i < n.params.size() && n.params[i] != key) ++i;
      if (i == n.params.size()) {
        return Error(n, absl::StrCat("macro '", n.name, "' has no argument '", key, "'"));
      }
      (*frame)[key] = value;
      given[i] = true;
    }
    std::vector<std::shared_ptr<Frame>> saved_frames = {frames_[0], frame};
    std::swap(saved_frames, frames_);
    std::string saved_out = std::move(out_);
    out_.clear();
    ++call_depth_;
    absl::Status status;
    for (size_t i = 0; i < n.params.size() && status.ok(); ++i) {
      if (given[i]) continue;
      if (n.defaults[i] == nullptr) {
        (*frame)[n.params[i]] = Value::Undefined(absl::StrCat("'", n.params[i], "' is undefined"));
        continue;
      }
      auto v = Eval(*n.defaults[i]);
      if (!v.ok()) {
        status = v.status();
      } else {
        (*frame)[n.params[i]] = *std::move(v);
      }
    }
    if (status.ok()) status = ExecList(n.body);
    --call_depth_;
    flow_ = Flow::kNormal;
    std::string result = std::move(out_);
    out_ = std::move(saved_out);
    std::swap(saved_frames, frames_);
    RETURN_IF_ERROR(status);
    return Value(std::move(result));
  }

  absl::StatusOr<CallArgs> EvalArgs(const Expr& e, size_t first) {
    CallArgs args;
    for (size_t i = first; i < e.args.size(); ++i) {
      ASSIGN_OR_RETURN(Value v, Eval(*e.args[i]));
      args.positional.push_back(std::move(v));
    }
    for (const auto& [key, expr] : e.kwargs) {
      ASSIGN_OR_RETURN(Value v, Eval(*expr));
      args.named.emplace_back(key, std::move(v));
    }
    return args;
  }

  // Evaluates the object of an attribute/item access; using Undefined there is an error.
  absl::StatusOr<Value> EvalObject(const Expr& e) {
    ASSIGN_OR_RETURN(Value obj, Eval(e));
    if (obj.is_undefined()) return Error(e, obj.undefined_message());
    return obj;
  }

  absl::StatusOr<Value> Eval(const Expr& e) {
    const NestingScope scope(&nesting_);
    absl::StatusOr<Value> v = EvalInner(e);
    if (!v.ok()) return Locate(e, v.status());
    // Each expression nests its result at most two levels deeper than its operands
    // (dict.items()), so checking every result keeps all values near the limit.
    if (v->depth() > limits_.max_value_depth) {
      return Error(e, absl::StrCat("value nests lists and dicts more than ", limits_.max_value_depth, " deep"));
    }
    return v;
  }

  absl::StatusOr<Value> EvalInner(const Expr& e) {
    if (nesting_ > kMaxNesting) return absl::InvalidArgumentError("template evaluation nested too deeply");
    RETURN_IF_ERROR(budget_.Charge());
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.value;
      case Expr::Kind::kName: return Lookup(e.name);
      case Expr::Kind::kList: {
        List items;
        for (const ExprPtr& item : e.args) {
          ASSIGN_OR_RETURN(Value v, Eval(*item));
          items.push_back(std::move(v));
        }
        return Value(std::move(items));
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          ASSIGN_OR_RETURN(Value key, Eval(*e.args[i]));
          if (!key.is_string()) return Error(*e.args[i], "dict literal keys must be strings");
          ASSIGN_OR_RETURN(Value value, Eval(*e.args[i + 1]));
          d.Set(key.as_string(), std::move(value));
        }
        return Value(std::move(d));
      }
      case Expr::Kind::kGetAttr: {
        ASSIGN_OR_RETURN(Value obj, EvalObject(*e.args[0]));
        return GetAttr(obj, e.name);
      }
      case Expr::Kind::kGetItem: {
        ASSIGN_OR_RETURN(Value obj, EvalObject(*e.args[0]));
        ASSIGN_OR_RETURN(Value key, Eval(*e.args[1]));
        return GetItem(obj, key, budget_);
      }
      case Expr::Kind::kSlice: {
        ASSIGN_OR_RETURN(Value obj, EvalObject(*e.args[0]));
        Value bounds[3];
        for (int i = 0; i < 3; ++i) {
          if (e.args[i + 1] != nullptr) {
            ASSIGN_OR_RETURN(bounds[i], Eval(*e.args[i + 1]));
          }
        }
        return Slice(obj, bounds[0], bounds[1], bounds[2], budget_);
      }
      case Expr::Kind::kCall: {
        ASSIGN_OR_RETURN(Value callee, Eval(*e.args[0]));
        if (callee.is_undefined()) return absl::InvalidArgumentError(callee.undefined_message());
        if (!callee.is_callable()) {
          return absl::InvalidArgumentError(absl::StrCat("'", callee.TypeName(), "' object is not callable"));
        }
        ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
        return callee.as_callable().fn(args, budget_);
      }
      case Expr::Kind::kFilter: {
        ASSIGN_OR_RETURN(Value input, Eval(*e.args[0]));
        ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
        return ApplyFilter(e.name, input, args, budget_);
      }
      case Expr::Kind::kTest: {
        ASSIGN_OR_RETURN(Value input, Eval(*e.args[0]));
        ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
        ASSIGN_OR_RETURN(bool result, ApplyTest(e.name, input, args, budget_));
        return Value(result != e.negated);
      }
      case Expr::Kind::kNeg:
      case Expr::Kind::kPos: {
        ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        if (v.is_undefined()) return absl::InvalidArgumentError(v.undefined_message());
        if (!v.is_number() && !v.is_bool()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "bad operand type for unary ", e.kind == Expr::Kind::kNeg ? "-" : "+", ": '", v.TypeName(), "'"));
        }
        if (e.kind == Expr::Kind::kPos) return v.is_bool() ? Value(v.as_int()) : v;
        if (v.is_float()) return Value(-v.as_float());
        if (v.as_int() == INT64_MIN) return absl::InvalidArgumentError("integer overflow");
        return Value(-v.as_int());
      }
      case Expr::Kind::kNot: {
        ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        return Value(!v.Truthy());
      }
      case Expr::Kind::kAnd:
      case Expr::Kind::kOr: {
        ASSIGN_OR_RETURN(Value left, Eval(*e.args[0]));
        if (left.Truthy() == (e.kind == Expr::Kind::kOr)) return left;
        return Eval(*e.args[1]);
      }
      case Expr::Kind::kBinary: {
        ASSIGN_OR_RETURN(Value left, Eval(*e.args[0]));
        ASSIGN_OR_RETURN(Value right, Eval(*e.args[1]));
        return BinaryOp(e.name, left, right, budget_);
      }
      case Expr::Kind::kConcat: {
        std::string s;
        for (const ExprPtr& part : e.args) {
          ASSIGN_OR_RETURN(Value v, Eval(*part));
          ASSIGN_OR_RETURN(std::string text, ToStr(v, budget_));
          if (s.size() + text.size() > limits_.max_output_bytes) {
            return absl::InvalidArgumentError("string too large");
          }
          s += text;
        }
        return Value(std::move(s));
      }
      case Expr::Kind::kCompare: {
        ASSIGN_OR_RETURN(Value left, Eval(*e.args[0]));
        for (size_t i = 0; i < e.ops.size(); ++i) {
          ASSIGN_OR_RETURN(Value right, Eval(*e.args[i + 1]));
          ASSIGN_OR_RETURN(bool ok, Compare(e.ops[i], left, right, budget_));
          if (!ok) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::kCondExpr: {
        ASSIGN_OR_RETURN(Value cond, Eval(*e.args[0]));
        if (cond.Truthy()) return Eval(*e.args[1]);
        if (e.args[2] == nullptr)
          return Value::Undefined("the inline if-expression evaluated to false and no else section was defined");
        return Eval(*e.args[2]);
      }
    }
    return absl::InvalidArgumentError("unknown expression");
  }

  const RenderLimits limits_;
  Budget budget_;
  std::vector<std::shared_ptr<Frame>> frames_;
  std::vector<Value> namespaces_;  // every namespace() made, for ~Renderer
  std::string out_;
  Flow flow_ = Flow::kNormal;
  int nesting_ = 0;
  int call_depth_ = 0;
};

}  // namespace

absl::StatusOr<std::string> Render(const NodeList& root, const Dict& context, const RenderLimits& limits) {
  return Renderer(context, limits).Run(root);
}

}  // namespace moeserve::jinja

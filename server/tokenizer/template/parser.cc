#include "server/tokenizer/template/parser.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/status_macros.h"
#include "server/tokenizer/template/builtins.h"
#include "server/tokenizer/template/lexer.h"

namespace moeserve::jinja {
namespace {

using T = Token::Type;

// Statements Jinja2 has but this interpreter does not run; named in the load error.
const absl::flat_hash_set<std::string_view>& UnsupportedStatements() {
  static const auto* kSet = new absl::flat_hash_set<std::string_view>{
      "extends", "block",      "include", "import", "from",      "call",    "filter",
      "with",    "autoescape", "do",      "trans",  "pluralize", "endblock"};
  return *kSet;
}

std::string Describe(const Token& t) {
  switch (t.type) {
    case T::kText: return "template text";
    case T::kVarBegin: return "'{{'";
    case T::kVarEnd: return "'}}'";
    case T::kBlockBegin: return "'{%'";
    case T::kBlockEnd: return "'%}'";
    case T::kName: return absl::StrCat("'", t.text, "'");
    case T::kString: return "string literal";
    case T::kInt:
    case T::kFloat: return absl::StrCat("number ", t.text);
    case T::kOp: return absl::StrCat("'", t.text, "'");
    case T::kEof: return "end of template";
  }
  return "token";
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<NodeList> ParseAll() {
    NodeList nodes;
    std::string ended_with;
    RETURN_IF_ERROR(ParseBody({}, &nodes, &ended_with));
    for (const auto& [name, token] : called_names_) {
      if (!IsSupportedGlobal(name) && !macros_.contains(name)) {
        return ErrorAt(token,
                       absl::StrCat("unsupported function '", name, "' (not a built-in and no macro of that name)"));
      }
    }
    return nodes;
  }

 private:
  const Token& Cur() const { return tokens_[pos_]; }
  const Token& Peek(size_t n = 1) const { return tokens_[std::min(pos_ + n, tokens_.size() - 1)]; }
  void Advance() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool IsOp(std::string_view op) const { return Cur().type == T::kOp && Cur().text == op; }
  bool IsName(std::string_view name) const { return Cur().type == T::kName && Cur().text == name; }

  absl::Status ErrorAt(const Token& t, std::string_view message) const {
    return absl::InvalidArgumentError(
        absl::StrFormat("chat template line %d, column %d: %s", t.line, t.column, message));
  }
  absl::Status Unexpected(const std::string& expected) const {
    return ErrorAt(Cur(), absl::StrCat("expected ", expected, ", got ", Describe(Cur())));
  }
  absl::Status ExpectOp(std::string_view op) {
    if (!IsOp(op)) return Unexpected(absl::StrCat("'", std::string(op), "'"));
    Advance();
    return absl::OkStatus();
  }
  absl::Status ExpectBlockEnd() {
    if (Cur().type != T::kBlockEnd) return Unexpected("'%}'");
    Advance();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Cur().type != T::kName) return Unexpected("a name");
    std::string name = Cur().text;
    Advance();
    return name;
  }

  ExprPtr NewExpr(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  NodePtr NewNode(Node::Kind kind, const Token& at) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = at.line;
    n->column = at.column;
    return n;
  }

  // ---- Statements ----

  // Parses nodes until `{% <one of end_names>` (left at the name) or the end of the template.
  absl::Status ParseBody(std::initializer_list<std::string_view> end_names, NodeList* out, std::string* ended_with) {
    while (true) {
      const Token& t = Cur();
      switch (t.type) {
        case T::kEof:
          if (end_names.size() == 0) return absl::OkStatus();
          return ErrorAt(
              t, absl::StrCat("unexpected end of template, expected '{% ", std::string(*end_names.begin()), " %}'"));
        case T::kText: {
          NodePtr n = NewNode(Node::Kind::kText, t);
          n->text = t.text;
          out->push_back(std::move(n));
          Advance();
          break;
        }
        case T::kVarBegin: {
          NodePtr n = NewNode(Node::Kind::kOutput, t);
          Advance();
          ASSIGN_OR_RETURN(n->expr, ParseTuple(true));
          if (Cur().type != T::kVarEnd) return Unexpected("'}}'");
          Advance();
          out->push_back(std::move(n));
          break;
        }
        case T::kBlockBegin: {
          const Token& name = Peek();
          if (name.type != T::kName) {
            Advance();
            return Unexpected("a statement name");
          }
          for (std::string_view end : end_names) {
            if (name.text == end) {
              Advance();
              *ended_with = name.text;
              return absl::OkStatus();
            }
          }
          Advance();
          if (++depth_ > kMaxDepth) return ErrorAt(name, "statements nested too deeply");
          ASSIGN_OR_RETURN(NodePtr n, ParseStatement());
          --depth_;
          out->push_back(std::move(n));
          break;
        }
        default: return Unexpected("template text or a tag");
      }
    }
  }

  // REQUIRES: Cur() is the statement name, after '{%'.
  absl::StatusOr<NodePtr> ParseStatement() {
    const Token& t = Cur();
    const std::string& kw = t.text;
    if (kw == "if") return ParseIf();
    if (kw == "for") return ParseFor();
    if (kw == "set") return ParseSet();
    if (kw == "macro") return ParseMacro();
    if (kw == "generation") {
      // transformers' AssistantTracker: renders its body unchanged.
      NodePtr n = NewNode(Node::Kind::kScope, t);
      Advance();
      RETURN_IF_ERROR(ExpectBlockEnd());
      std::string ended;
      RETURN_IF_ERROR(ParseBody({"endgeneration"}, &n->body, &ended));
      Advance();
      RETURN_IF_ERROR(ExpectBlockEnd());
      return n;
    }
    if (kw == "break" || kw == "continue") {
      if (loop_depth_ == 0) return ErrorAt(t, absl::StrCat("'", kw, "' outside of a for loop"));
      NodePtr n = NewNode(kw == "break" ? Node::Kind::kBreak : Node::Kind::kContinue, t);
      Advance();
      RETURN_IF_ERROR(ExpectBlockEnd());
      return n;
    }
    if (UnsupportedStatements().contains(kw)) {
      return ErrorAt(t, absl::StrCat("unsupported statement '{% ", kw,
                                     " %}' (chat templates support if, for, set, macro, "
                                     "break, continue, raw and generation)"));
    }
    return ErrorAt(t, absl::StrCat("unknown statement '", kw, "'"));
  }

  absl::StatusOr<NodePtr> ParseIf() {
    NodePtr n = NewNode(Node::Kind::kIf, Cur());
    Advance();
    ExprPtr cond;
    ASSIGN_OR_RETURN(cond, ParseTuple(false));
    RETURN_IF_ERROR(ExpectBlockEnd());
    while (true) {
      NodeList body;
      std::string ended;
      RETURN_IF_ERROR(ParseBody({"elif", "else", "endif"}, &body, &ended));
      n->branches.emplace_back(std::move(cond), std::move(body));
      Advance();  // the end name
      if (ended == "elif") {
        ASSIGN_OR_RETURN(cond, ParseTuple(false));
        RETURN_IF_ERROR(ExpectBlockEnd());
        continue;
      }
      RETURN_IF_ERROR(ExpectBlockEnd());
      if (ended == "endif") return n;
      NodeList else_body;
      RETURN_IF_ERROR(ParseBody({"endif"}, &else_body, &ended));
      n->branches.emplace_back(nullptr, std::move(else_body));
      Advance();
      RETURN_IF_ERROR(ExpectBlockEnd());
      return n;
    }
  }

  absl::Status ParseTargets(std::vector<std::string>* targets) {
    const bool parens = IsOp("(");
    if (parens) Advance();
    while (true) {
      ASSIGN_OR_RETURN(std::string name, ExpectName());
      targets->push_back(std::move(name));
      if (!IsOp(",")) break;
      Advance();
      if (parens && IsOp(")")) break;
    }
    if (parens) RETURN_IF_ERROR(ExpectOp(")"));
    return absl::OkStatus();
  }

  absl::StatusOr<NodePtr> ParseFor() {
    NodePtr n = NewNode(Node::Kind::kFor, Cur());
    Advance();
    RETURN_IF_ERROR(ParseTargets(&n->targets));
    if (!IsName("in")) return Unexpected("'in'");
    Advance();
    ASSIGN_OR_RETURN(n->expr, ParseTuple(false));
    if (IsName("if")) {
      Advance();
      ASSIGN_OR_RETURN(n->filter, ParseExpression(true));
    }
    if (IsName("recursive")) return ErrorAt(Cur(), "unsupported: recursive for loops");
    RETURN_IF_ERROR(ExpectBlockEnd());
    ++loop_depth_;
    std::string ended;
    RETURN_IF_ERROR(ParseBody({"else", "endfor"}, &n->body, &ended));
    --loop_depth_;
    Advance();
    RETURN_IF_ERROR(ExpectBlockEnd());
    if (ended == "else") {
      RETURN_IF_ERROR(ParseBody({"endfor"}, &n->else_body, &ended));
      Advance();
      RETURN_IF_ERROR(ExpectBlockEnd());
    }
    return n;
  }

  absl::StatusOr<NodePtr> ParseSet() {
    NodePtr n = NewNode(Node::Kind::kSet, Cur());
    Advance();
    ASSIGN_OR_RETURN(std::string first, ExpectName());
    n->targets.push_back(std::move(first));
    if (IsOp(".")) {
      Advance();
      ASSIGN_OR_RETURN(n->attr, ExpectName());
    } else if (IsOp(",")) {
      Advance();
      RETURN_IF_ERROR(ParseTargets(&n->targets));
    }
    if (Cur().type == T::kBlockEnd && n->targets.size() == 1 && n->attr.empty()) {
      n->kind = Node::Kind::kSetBlock;
      Advance();
      std::string ended;
      RETURN_IF_ERROR(ParseBody({"endset"}, &n->body, &ended));
      Advance();
      RETURN_IF_ERROR(ExpectBlockEnd());
      return n;
    }
    RETURN_IF_ERROR(ExpectOp("="));
    ASSIGN_OR_RETURN(n->expr, ParseTuple(true));
    RETURN_IF_ERROR(ExpectBlockEnd());
    return n;
  }

  absl::StatusOr<NodePtr> ParseMacro() {
    NodePtr n = NewNode(Node::Kind::kMacro, Cur());
    Advance();
    ASSIGN_OR_RETURN(n->name, ExpectName());
    RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      ASSIGN_OR_RETURN(std::string param, ExpectName());
      n->params.push_back(std::move(param));
      ExprPtr def;
      if (IsOp("=")) {
        Advance();
        ASSIGN_OR_RETURN(def, ParseExpression(true));
      }
      n->defaults.push_back(std::move(def));
      if (!IsOp(",")) break;
      Advance();
    }
    RETURN_IF_ERROR(ExpectOp(")"));
    RETURN_IF_ERROR(ExpectBlockEnd());
    macros_.insert(n->name);
    const int saved_depth = loop_depth_;
    loop_depth_ = 0;
    std::string ended;
    RETURN_IF_ERROR(ParseBody({"endmacro"}, &n->body, &ended));
    loop_depth_ = saved_depth;
    Advance();
    RETURN_IF_ERROR(ExpectBlockEnd());
    return n;
  }

  // ---- Expressions (Jinja2 precedence, lowest first) ----

  bool AtTupleEnd() const {
    return Cur().type == T::kVarEnd || Cur().type == T::kBlockEnd || IsOp(")") || IsName("if") || IsName("recursive") ||
           Cur().type == T::kEof;
  }

  absl::StatusOr<ExprPtr> ParseTuple(bool with_condexpr) {
    const Token& start = Cur();
    ASSIGN_OR_RETURN(ExprPtr first, ParseExpression(with_condexpr));
    if (!IsOp(",")) return first;
    ExprPtr tuple = NewExpr(Expr::Kind::kList, start);
    tuple->args.push_back(std::move(first));
    while (IsOp(",")) {
      Advance();
      if (AtTupleEnd()) break;
      ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(with_condexpr));
      tuple->args.push_back(std::move(item));
    }
    return tuple;
  }

  absl::StatusOr<ExprPtr> ParseExpression(bool with_condexpr) {
    if (++depth_ > kMaxDepth) return ErrorAt(Cur(), "expression nested too deeply");
    absl::StatusOr<ExprPtr> result = with_condexpr ? ParseCondExpr() : ParseOr();
    --depth_;
    return result;
  }

  absl::StatusOr<ExprPtr> ParseCondExpr() {
    ASSIGN_OR_RETURN(ExprPtr expr, ParseOr());
    while (IsName("if")) {
      ExprPtr cond = NewExpr(Expr::Kind::kCondExpr, Cur());
      Advance();
      ASSIGN_OR_RETURN(ExprPtr test, ParseOr());
      ExprPtr otherwise;
      if (IsName("else")) {
        Advance();
        ASSIGN_OR_RETURN(otherwise, ParseCondExpr());
      }
      cond->args.push_back(std::move(test));
      cond->args.push_back(std::move(expr));
      cond->args.push_back(std::move(otherwise));
      expr = std::move(cond);
    }
    return expr;
  }

  absl::StatusOr<ExprPtr> ParseOr() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    while (IsName("or")) {
      ExprPtr e = NewExpr(Expr::Kind::kOr, Cur());
      Advance();
      ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      e->args.push_back(std::move(left));
      e->args.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseAnd() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    while (IsName("and")) {
      ExprPtr e = NewExpr(Expr::Kind::kAnd, Cur());
      Advance();
      ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      e->args.push_back(std::move(left));
      e->args.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
      ExprPtr e = NewExpr(Expr::Kind::kNot, Cur());
      Advance();
      if (++depth_ > kMaxDepth) return ErrorAt(Cur(), "expression nested too deeply");
      ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
      --depth_;
      e->args.push_back(std::move(operand));
      return e;
    }
    return ParseCompare();
  }

  absl::StatusOr<ExprPtr> ParseCompare() {
    const Token& start = Cur();
    ASSIGN_OR_RETURN(ExprPtr first, ParseMath1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().type == T::kOp && (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" || Cur().text == ">" ||
                                   Cur().text == "<=" || Cur().text == ">=")) {
        op = Cur().text;
        Advance();
      } else if (IsName("in")) {
        op = "in";
        Advance();
      } else if (IsName("not") && Peek().type == T::kName && Peek().text == "in") {
        op = "notin";
        Advance();
        Advance();
      } else {
        break;
      }
      if (cmp == nullptr) {
        cmp = NewExpr(Expr::Kind::kCompare, start);
        cmp->args.push_back(std::move(first));
      }
      ASSIGN_OR_RETURN(ExprPtr operand, ParseMath1());
      cmp->ops.push_back(std::move(op));
      cmp->args.push_back(std::move(operand));
    }
    return cmp != nullptr ? std::move(cmp) : std::move(first);
  }

  absl::StatusOr<ExprPtr> ParseBinaryLevel(std::initializer_list<std::string_view> ops,
                                           absl::StatusOr<ExprPtr> (Parser::*next)()) {
    ASSIGN_OR_RETURN(ExprPtr left, (this->*next)());
    while (true) {
      bool matched = false;
      for (std::string_view op : ops) matched = matched || IsOp(op);
      if (!matched) return left;
      ExprPtr e = NewExpr(Expr::Kind::kBinary, Cur());
      e->name = Cur().text;
      Advance();
      ASSIGN_OR_RETURN(ExprPtr right, (this->*next)());
      e->args.push_back(std::move(left));
      e->args.push_back(std::move(right));
      left = std::move(e);
    }
  }

  absl::StatusOr<ExprPtr> ParseMath1() { return ParseBinaryLevel({"+", "-"}, &Parser::ParseConcat); }

  absl::StatusOr<ExprPtr> ParseConcat() {
    const Token& start = Cur();
    ASSIGN_OR_RETURN(ExprPtr first, ParseMath2());
    if (!IsOp("~")) return first;
    ExprPtr e = NewExpr(Expr::Kind::kConcat, start);
    e->args.push_back(std::move(first));
    while (IsOp("~")) {
      Advance();
      ASSIGN_OR_RETURN(ExprPtr next, ParseMath2());
      e->args.push_back(std::move(next));
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParseMath2() { return ParseBinaryLevel({"*", "/", "//", "%"}, &Parser::ParsePow); }
  absl::StatusOr<ExprPtr> ParsePow() { return ParseBinaryLevel({"**"}, &Parser::ParseUnaryFiltered); }
  absl::StatusOr<ExprPtr> ParseUnaryFiltered() { return ParseUnary(true); }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    if (++depth_ > kMaxDepth) return ErrorAt(Cur(), "expression nested too deeply");
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      node = NewExpr(IsOp("-") ? Expr::Kind::kNeg : Expr::Kind::kPos, Cur());
      Advance();
      ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(false));
      node->args.push_back(std::move(operand));
    } else {
      ASSIGN_OR_RETURN(node, ParsePrimary());
    }
    ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
    if (with_filter) {
      ASSIGN_OR_RETURN(node, ParseFilterExpr(std::move(node)));
    }
    --depth_;
    return node;
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    const Token& t = Cur();
    switch (t.type) {
      case T::kName: {
        ExprPtr e = NewExpr(Expr::Kind::kLiteral, t);
        if (t.text == "true" || t.text == "True") {
          e->value = Value(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        Advance();
        return e;
      }
      case T::kString: {
        ExprPtr e = NewExpr(Expr::Kind::kLiteral, t);
        std::string s;
        while (Cur().type == T::kString) {  // adjacent literals concatenate
          s += Cur().text;
          Advance();
        }
        e->value = Value(std::move(s));
        return e;
      }
      case T::kInt:
      case T::kFloat: {
        ExprPtr e = NewExpr(Expr::Kind::kLiteral, t);
        e->value = t.type == T::kInt ? Value(t.int_value) : Value(t.float_value);
        Advance();
        return e;
      }
      case T::kOp:
        if (t.text == "(") {
          Advance();
          if (IsOp(")")) {
            Advance();
            return NewExpr(Expr::Kind::kList, t);
          }
          ASSIGN_OR_RETURN(ExprPtr inner, ParseTuple(true));
          RETURN_IF_ERROR(ExpectOp(")"));
          return inner;
        }
        if (t.text == "[") {
          ExprPtr e = NewExpr(Expr::Kind::kList, t);
          Advance();
          while (!IsOp("]")) {
            ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
            e->args.push_back(std::move(item));
            if (!IsOp(",")) break;
            Advance();
          }
          RETURN_IF_ERROR(ExpectOp("]"));
          return e;
        }
        if (t.text == "{") {
          ExprPtr e = NewExpr(Expr::Kind::kDict, t);
          Advance();
          while (!IsOp("}")) {
            ASSIGN_OR_RETURN(ExprPtr key, ParseExpression(true));
            RETURN_IF_ERROR(ExpectOp(":"));
            ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
            e->args.push_back(std::move(key));
            e->args.push_back(std::move(value));
            if (!IsOp(",")) break;
            Advance();
          }
          RETURN_IF_ERROR(ExpectOp("}"));
          return e;
        }
        break;
      default: break;
    }
    return Unexpected("an expression");
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      const Token& t = Cur();
      if (IsOp(".")) {
        Advance();
        if (Cur().type == T::kInt) {
          ExprPtr e = NewExpr(Expr::Kind::kGetItem, t);
          ExprPtr index = NewExpr(Expr::Kind::kLiteral, Cur());
          index->value = Value(Cur().int_value);
          Advance();
          e->args.push_back(std::move(node));
          e->args.push_back(std::move(index));
          node = std::move(e);
          continue;
        }
        ExprPtr e = NewExpr(Expr::Kind::kGetAttr, t);
        ASSIGN_OR_RETURN(e->name, ExpectName());
        e->args.push_back(std::move(node));
        node = std::move(e);
      } else if (IsOp("[")) {
        Advance();
        ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node), t));
      } else if (IsOp("(")) {
        ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr target, const Token& at) {
    ExprPtr parts[3];
    bool is_slice = false;
    if (!IsOp(":")) {
      ASSIGN_OR_RETURN(parts[0], ParseExpression(true));
    }
    if (IsOp(":")) {
      is_slice = true;
      Advance();
      if (!IsOp(":") && !IsOp("]")) {
        ASSIGN_OR_RETURN(parts[1], ParseExpression(true));
      }
      if (IsOp(":")) {
        Advance();
        if (!IsOp("]")) {
          ASSIGN_OR_RETURN(parts[2], ParseExpression(true));
        }
      }
    }
    RETURN_IF_ERROR(ExpectOp("]"));
    ExprPtr e = NewExpr(is_slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, at);
    e->args.push_back(std::move(target));
    e->args.push_back(std::move(parts[0]));
    if (is_slice) {
      e->args.push_back(std::move(parts[1]));
      e->args.push_back(std::move(parts[2]));
    }
    return e;
  }

  // Parses '(' args ')' into `e->args` (after whatever is already there) and `e->kwargs`.
  absl::Status ParseCallArgs(Expr* e) {
    RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (IsOp("*") || IsOp("**")) return ErrorAt(Cur(), "unsupported: *args / **kwargs in calls");
      if (Cur().type == T::kName && Peek().type == T::kOp && Peek().text == "=") {
        std::string key = Cur().text;
        Advance();
        Advance();
        ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        e->kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!e->kwargs.empty()) return ErrorAt(Cur(), "positional argument follows keyword argument");
        ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        e->args.push_back(std::move(value));
      }
      if (!IsOp(",")) break;
      Advance();
    }
    return ExpectOp(")");
  }

  absl::StatusOr<ExprPtr> ParseCall(ExprPtr callee) {
    const Token& t = Cur();
    if (callee->kind == Expr::Kind::kName) {
      called_names_.emplace_back(callee->name, t);
    } else if (callee->kind == Expr::Kind::kGetAttr && !IsSupportedMethod(callee->name)) {
      return ErrorAt(t, absl::StrCat("unsupported method '", callee->name, "()'"));
    }
    ExprPtr e = NewExpr(Expr::Kind::kCall, t);
    e->line = callee->line;  // report calls at the callee, not at '('
    e->column = callee->column;
    e->args.push_back(std::move(callee));
    RETURN_IF_ERROR(ParseCallArgs(e.get()));
    return e;
  }

  absl::StatusOr<std::string> ParseDottedName() {
    ASSIGN_OR_RETURN(std::string name, ExpectName());
    while (IsOp(".")) {
      Advance();
      ASSIGN_OR_RETURN(std::string part, ExpectName());
      absl::StrAppend(&name, ".", part);
    }
    return name;
  }

  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node) {
    while (true) {
      const Token& t = Cur();
      if (IsOp("|")) {
        Advance();
        const Token& name_token = Cur();
        ExprPtr e = NewExpr(Expr::Kind::kFilter, name_token);
        ASSIGN_OR_RETURN(e->name, ParseDottedName());
        if (!IsSupportedFilter(e->name)) {
          return ErrorAt(name_token, absl::StrCat("unsupported filter '", e->name, "'"));
        }
        e->args.push_back(std::move(node));
        if (IsOp("(")) RETURN_IF_ERROR(ParseCallArgs(e.get()));
        node = std::move(e);
      } else if (IsName("is")) {
        Advance();
        ExprPtr e = NewExpr(Expr::Kind::kTest, t);
        if (IsName("not")) {
          e->negated = true;
          Advance();
        }
        const Token& name_token = Cur();
        ASSIGN_OR_RETURN(e->name, ParseDottedName());
        if (!IsSupportedTest(e->name)) {
          return ErrorAt(name_token, absl::StrCat("unsupported test '", e->name, "'"));
        }
        e->args.push_back(std::move(node));
        if (IsOp("(")) {
          RETURN_IF_ERROR(ParseCallArgs(e.get()));
        } else if ((Cur().type == T::kName || Cur().type == T::kString || Cur().type == T::kInt ||
                    Cur().type == T::kFloat || IsOp("[") || IsOp("{")) &&
                   !IsName("else") && !IsName("or") && !IsName("and")) {
          if (IsName("is")) return ErrorAt(Cur(), "you cannot chain multiple tests with 'is'");
          ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
          ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
          e->args.push_back(std::move(arg));
        }
        node = std::move(e);
      } else if (IsOp("(")) {
        ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  static constexpr int kMaxDepth = 200;

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  absl::flat_hash_set<std::string> macros_;
  std::vector<std::pair<std::string, Token>> called_names_;
};

}  // namespace

absl::StatusOr<NodeList> ParseTemplate(std::string_view source) {
  ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(source));
  return Parser(std::move(tokens)).ParseAll();
}

}  // namespace moeserve::jinja

#ifndef MOESERVE_SERVER_TOKENIZER_TEMPLATE_AST_H_
#define MOESERVE_SERVER_TOKENIZER_TEMPLATE_AST_H_

// Syntax tree of a parsed chat template. Built once by the parser, read-only afterwards.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/tokenizer/template/value.h"

namespace moeserve::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kList,      // args: items (also tuples)
    kDict,      // args: key0, value0, key1, value1, ...
    kGetAttr,   // args[0].name
    kGetItem,   // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]:args[3]], missing parts are null
    kCall,      // args[0](args[1:], kwargs)
    kFilter,    // args[0] | name(args[1:], kwargs)
    kTest,      // args[0] is [not] name(args[1:], kwargs); negated
    kNeg,       // -args[0]
    kPos,       // +args[0]
    kNot,       // not args[0]
    kAnd,       // args[0] and args[1]
    kOr,        // args[0] or args[1]
    kBinary,    // args[0] name args[1]; name in + - * / // % **
    kConcat,    // args[0] ~ args[1] ~ ...
    kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ...; ops in == != < > <= >= in notin
    kCondExpr,  // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  int column = 0;
  Value value;
  std::string name;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches: (condition or null for else, body)
    kFor,       // for targets in expr [if filter] ... [else else_body]
    kSet,       // set targets = expr, or set targets[0].attr = expr (namespace) when attr set
    kSetBlock,  // {% set targets[0] %}body{% endset %}
    kMacro,     // macro name(params = defaults) body
    kBreak,
    kContinue,
    kScope,  // body rendered as is (e.g. {% generation %})
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::pair<ExprPtr, NodeList>> branches;
  std::vector<std::string> targets;
  std::string attr;
  NodeList body;
  NodeList else_body;
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param, null when none
};

}  // namespace moeserve::jinja

#endif  // MOESERVE_SERVER_TOKENIZER_TEMPLATE_AST_H_

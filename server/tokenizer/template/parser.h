#ifndef MOESERVE_SERVER_TOKENIZER_TEMPLATE_PARSER_H_
#define MOESERVE_SERVER_TOKENIZER_TEMPLATE_PARSER_H_

// Parses the Jinja2 subset used by chat templates into a syntax tree, with Jinja2's operator
// precedence. Everything the interpreter cannot run is rejected here, at load: unknown statements
// (extends, include, import, call, ...), filters, tests, methods and functions.

#include <string_view>

#include "absl/status/statusor.h"
#include "server/tokenizer/template/ast.h"

namespace moeserve::jinja {

// Errors are InvalidArgument("chat template line L, column C: ...").
absl::StatusOr<NodeList> ParseTemplate(std::string_view source);

}  // namespace moeserve::jinja

#endif  // MOESERVE_SERVER_TOKENIZER_TEMPLATE_PARSER_H_

#include "server/structured/constraint_compiler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/structured/gbnf_parser.h"
#include "server/structured/json_schema.h"
#include "server/structured/regex_parser.h"
#include "server/structured/tool_calls_grammar.h"

namespace moeserve::structured {
namespace {

// Prefixes a message with the field when the parser did not.
absl::Status AsInvalid(const absl::Status& s, const char* field) {
  std::string message(s.message());
  const std::string prefix = absl::StrCat(field, ": ");
  if (message.rfind(prefix, 0) != 0) message = prefix + message;
  return absl::InvalidArgumentError(message);
}

}  // namespace

const char* ConstraintFieldName(Constraint::Kind kind) {
  switch (kind) {
    case Constraint::Kind::kJsonSchema: return "json_schema";
    case Constraint::Kind::kRegex: return "regex";
    case Constraint::Kind::kGrammar: return "grammar";
    case Constraint::Kind::kJsonObject: return "json_object";
    case Constraint::Kind::kToolCalls: return "tool_calls";
    case Constraint::Kind::kTriggered: return "triggered";
    case Constraint::Kind::kNone: break;
  }
  return "constraint";
}

absl::StatusOr<Grammar> ConstraintToGrammar(const Constraint& c) {
  const char* field = ConstraintFieldName(c.kind);
  absl::StatusOr<Grammar> g = absl::InvalidArgumentError("no constraint");
  switch (c.kind) {
    case Constraint::Kind::kJsonSchema: g = JsonSchemaToGrammar(c.value, {.any_whitespace = c.any_whitespace}); break;
    case Constraint::Kind::kJsonObject:
      g = AnyJsonGrammar(/*object_only=*/true, {.any_whitespace = c.any_whitespace});
      break;
    case Constraint::Kind::kRegex: {
      absl::StatusOr<Expr> e = ParseRegex(c.value);
      if (!e.ok()) return AsInvalid(e.status(), field);
      Grammar r;
      r.rules.push_back({"root", *std::move(e)});
      g = std::move(r);
      break;
    }
    case Constraint::Kind::kGrammar: g = ParseGbnf(c.value); break;
    case Constraint::Kind::kToolCalls: g = ToolCallsGrammar(c.value, {.any_whitespace = c.any_whitespace}); break;
    case Constraint::Kind::kTriggered:
      g = TriggeredToolCallsGrammar(c.value, {.any_whitespace = c.any_whitespace});
      break;
    case Constraint::Kind::kNone: break;
  }
  if (!g.ok()) return AsInvalid(g.status(), field);
  return g;
}

ConstraintCompiler::ConstraintCompiler(std::shared_ptr<const TokenVocabulary> vocab, ConstraintCompilerOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {}

absl::StatusOr<std::shared_ptr<const CompiledGrammar>> ConstraintCompiler::Compile(const Constraint& c) {
  const char* field = ConstraintFieldName(c.kind);
  if (static_cast<int64_t>(c.value.size()) > options_.max_constraint_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", c.value.size(), " bytes; the limit is ", options_.max_constraint_bytes));
  }
  const std::string key = absl::StrCat(static_cast<int>(c.kind), c.any_whitespace ? "w" : "c", ":", c.value);
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++stats_.hits;
      return it->second->grammar;
    }
    ++stats_.misses;
  }
  absl::StatusOr<Grammar> grammar = ConstraintToGrammar(c);
  if (!grammar.ok()) return grammar.status();
  absl::StatusOr<std::shared_ptr<const CompiledGrammar>> compiled =
      CompiledGrammar::Compile(*grammar, vocab_, options_.limits);
  if (!compiled.ok()) return AsInvalid(compiled.status(), field);
  const int64_t bytes = static_cast<int64_t>((*compiled)->MemoryBytes());
  absl::MutexLock lock(&mu_);
  if (!index_.contains(key)) {
    lru_.push_front(Entry{key, *compiled, bytes});
    index_.emplace(key, lru_.begin());
    stats_.bytes += bytes;
    while (!lru_.empty() && (static_cast<int32_t>(lru_.size()) > options_.cache_entries ||
                             (stats_.bytes > options_.cache_bytes && lru_.size() > 1))) {
      stats_.bytes -= lru_.back().bytes;
      index_.erase(lru_.back().key);
      lru_.pop_back();
    }
  }
  return compiled;
}

ConstraintCompiler::Stats ConstraintCompiler::stats() const {
  absl::MutexLock lock(&mu_);
  Stats s = stats_;
  s.entries = static_cast<int64_t>(lru_.size());
  return s;
}

}  // namespace moeserve::structured

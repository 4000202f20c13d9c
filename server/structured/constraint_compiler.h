#ifndef MOESERVE_SERVER_STRUCTURED_CONSTRAINT_COMPILER_H_
#define MOESERVE_SERVER_STRUCTURED_CONSTRAINT_COMPILER_H_

// Constraint: what a request asks its output to match (a JSON Schema, a regex, a GBNF grammar, or
// any JSON object). ConstraintCompiler turns constraints into CompiledGrammars for one vocabulary,
// with an LRU cache keyed by the constraint, and limits on input size, automaton size and compile
// time so that a hostile constraint costs a bounded moment of one caller's thread, never the
// engine's.
//
// Every error is InvalidArgument with a message naming the constraint field ("json_schema: ...",
// "regex: ...", "grammar: ...") and, for limits, the limit.
//
// Thread safety: ConstraintCompiler is safe for concurrent use (compiles run on the callers'
// threads, outside the cache lock; two callers may compile the same constraint at once).

#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/structured/constraint.h"
#include "server/structured/grammar.h"
#include "server/structured/matcher.h"
#include "server/structured/vocabulary.h"

namespace moeserve::structured {

// "json_schema", "regex", "grammar", "json_object", "tool_calls" or "triggered": the request field
// a constraint came from.
const char* ConstraintFieldName(Constraint::Kind kind);

// The constraint's grammar IR (no vocabulary). Errors as documented above.
absl::StatusOr<Grammar> ConstraintToGrammar(const Constraint& constraint);

struct ConstraintCompilerOptions {
  int64_t max_constraint_bytes = int64_t{1} << 20;  // schema / pattern / grammar text
  CompileLimits limits;
  int32_t cache_entries = 256;
  int64_t cache_bytes = int64_t{1} << 30;  // compiled masks held by the cache
};

class ConstraintCompiler {
 public:
  ConstraintCompiler(std::shared_ptr<const TokenVocabulary> vocab, ConstraintCompilerOptions options = {});

  ConstraintCompiler(const ConstraintCompiler&) = delete;
  ConstraintCompiler& operator=(const ConstraintCompiler&) = delete;

  // The compiled constraint, from the cache when it holds it. REQUIRES: constraint.active().
  absl::StatusOr<std::shared_ptr<const CompiledGrammar>> Compile(const Constraint& constraint);

  const TokenVocabulary& vocab() const { return *vocab_; }
  const std::shared_ptr<const TokenVocabulary>& shared_vocab() const { return vocab_; }

  struct Stats {
    int64_t hits = 0;
    int64_t misses = 0;
    int64_t entries = 0;
    int64_t bytes = 0;
  };
  Stats stats() const;

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const CompiledGrammar> grammar;
    int64_t bytes = 0;
  };

  const std::shared_ptr<const TokenVocabulary> vocab_;
  const ConstraintCompilerOptions options_;
  mutable absl::Mutex mu_;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // most recent first
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_CONSTRAINT_COMPILER_H_

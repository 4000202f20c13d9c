#ifndef MOESERVE_SERVER_STRUCTURED_MATCHER_H_
#define MOESERVE_SERVER_STRUCTURED_MATCHER_H_

// CompiledGrammar: a grammar compiled for one vocabulary (the Pda and its token-mask cache),
// shared by every request that uses the same constraint. Immutable; safe for concurrent use.
//
// GrammarMatcher: one request's position in a CompiledGrammar. Each step the engine asks for the
// mask of allowed next tokens (FillNextTokenBitmask) and then advances by the sampled token
// (AcceptToken). Stop ids (EOS) are allowed exactly where the output so far is a complete
// sentence of the grammar; afterwards the matcher is terminated and allows stop ids only (a
// request that ignores EOS keeps emitting them until max_tokens). Requires external
// synchronization (one request, one thread at a time); different matchers may run concurrently.
//
//   GrammarMatcher m(compiled);
//   std::vector<uint32_t> mask(compiled->vocab().mask_words());
//   m.FillNextTokenBitmask(mask.data());   // bit id of word id / 32: token id allowed
//   ... sample a token t with the mask applied ...
//   m.AcceptToken(t);

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/structured/grammar.h"
#include "server/structured/pda.h"
#include "server/structured/stack_arena.h"
#include "server/structured/token_mask_cache.h"
#include "server/structured/token_walker.h"
#include "server/structured/vocabulary.h"

namespace moeserve::structured {

struct CompileLimits {
  PdaLimits pda;
  TokenMaskCache::Limits masks;
};

class CompiledGrammar {
 public:
  // Errors: InvalidArgument for a grammar that cannot be matched, ResourceExhausted for one that
  // exceeds the limits (size or time).
  static absl::StatusOr<std::shared_ptr<const CompiledGrammar>> Compile(const Grammar& grammar,
                                                                        std::shared_ptr<const TokenVocabulary> vocab,
                                                                        const CompileLimits& limits = {});

  const Pda& pda() const { return pda_; }
  const TokenMaskCache& masks() const { return *masks_; }
  const TokenVocabulary& vocab() const { return *vocab_; }
  size_t MemoryBytes() const { return pda_.MemoryBytes() + masks_->MemoryBytes(); }

 private:
  CompiledGrammar() = default;
  Pda pda_;
  std::unique_ptr<TokenMaskCache> masks_;
  std::shared_ptr<const TokenVocabulary> vocab_;
};

class GrammarMatcher {
 public:
  // max_rollback: how many accepted tokens Rollback can undo.
  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar, int32_t max_rollback = 0);

  GrammarMatcher(const GrammarMatcher&) = delete;
  GrammarMatcher& operator=(const GrammarMatcher&) = delete;

  // Advances by token `id`; false (state unchanged) when the token is not allowed here.
  bool AcceptToken(int32_t id);
  // Advances by raw bytes (tests, prefilled text); false (state unchanged) when not allowed.
  bool AcceptBytes(std::string_view bytes);
  // Writes vocab().mask_words() words: bit (id % 32) of word (id / 32) set when token id may come
  // next. Never all zero.
  void FillNextTokenBitmask(uint32_t* mask);
  // Undoes the last `count` AcceptToken/AcceptBytes calls. REQUIRES: count <= num_rollback().
  void Rollback(int32_t count);
  int32_t num_rollback() const { return static_cast<int32_t>(history_.size()); }

  // The output so far is a complete sentence (a stop id is allowed next).
  bool CanEnd() const { return accepted_ || terminated_; }
  // Nothing but a stop id can follow (the grammar cannot be extended).
  bool MustEnd() const { return stacks_.empty() || terminated_; }
  // A stop id was accepted.
  bool IsTerminated() const { return terminated_; }
  const CompiledGrammar& grammar() const { return *grammar_; }
  int32_t num_stacks() const { return static_cast<int32_t>(stacks_.size()); }

 private:
  // Reads `bytes` from stacks_ into next_; false when some byte cannot be read.
  bool Consume(std::string_view bytes, bool* accepted);
  void Commit(bool accepted);
  void MaybeCompact();

  std::shared_ptr<const CompiledGrammar> grammar_;
  int32_t max_rollback_;
  StackArena arena_;
  PdaStepper stepper_;
  TokenWalker walker_;
  std::vector<Stack> stacks_;  // the closure: every top reads bytes
  bool accepted_ = false;
  bool terminated_ = false;
  struct Snapshot {
    std::vector<Stack> stacks;
    bool accepted;
    bool terminated;
  };
  std::deque<Snapshot> history_;
  int32_t compact_at_ = 4096;
  // Scratch.
  std::vector<Stack> cur_, next_;
  std::vector<std::pair<uint64_t, int32_t>> keys_;
  std::vector<Stack> group_;
  std::vector<uint32_t> scratch_mask_;
};

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_MATCHER_H_

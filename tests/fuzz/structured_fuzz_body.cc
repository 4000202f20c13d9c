#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/structured/constraint_compiler.h"
#include "tests/fuzz/structured_fuzz.h"

namespace moeserve::fuzz {
namespace {

using structured::Constraint;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "structured_constraint_fuzz: invariant broken: %s\n", what.c_str());
  std::abort();
}

structured::ConstraintCompiler& Compiler() {
  static structured::ConstraintCompiler* compiler = [] {
    std::vector<std::optional<std::string>> bytes(257);
    for (int i = 0; i < 256; ++i) bytes[i] = std::string(1, static_cast<char>(i));
    auto vocab = structured::TokenVocabulary::Create(std::move(bytes), {.mask_size = 257, .stop_ids = {256}});
    if (!vocab.ok()) Fail(std::string(vocab.status().message()));
    structured::ConstraintCompilerOptions options;
    options.max_constraint_bytes = 1 << 16;
    options.limits.pda.max_states = 100'000;
    options.limits.pda.max_time = absl::Seconds(2);
    options.cache_entries = 0;
    return new structured::ConstraintCompiler(*vocab, options);
  }();
  return *compiler;
}

bool Bit(const std::vector<uint32_t>& mask, int32_t id) { return (mask[id >> 5] >> (id & 31)) & 1u; }

}  // namespace

void FuzzConstraintCompiler(std::string_view data) {
  if (data.empty()) return;
  // The first byte: the kind in its low 7 bits (modulo the kinds), free whitespace in the top bit.
  static constexpr Constraint::Kind kKinds[] = {Constraint::Kind::kJsonSchema, Constraint::Kind::kRegex,
                                                Constraint::Kind::kGrammar, Constraint::Kind::kToolCalls,
                                                Constraint::Kind::kTriggered};
  Constraint c{.kind = kKinds[(static_cast<uint8_t>(data[0]) & 0x7F) % std::size(kKinds)],
               .value = std::string(data.substr(1))};
  c.any_whitespace = static_cast<uint8_t>(data[0]) & 0x80;
  auto compiled = Compiler().Compile(c);
  if (!compiled.ok()) {
    if (compiled.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("compile error is not InvalidArgument: " + compiled.status().ToString());
    }
    return;
  }
  structured::GrammarMatcher matcher(*compiled, 1);
  std::vector<uint32_t> mask((*compiled)->vocab().mask_words());
  // Walk: at each step prefer the input's next byte when allowed, else the smallest allowed token.
  size_t next = 1;
  for (int step = 0; step < 64 && !matcher.IsTerminated(); ++step) {
    matcher.FillNextTokenBitmask(mask.data());
    int32_t first = -1;
    for (int32_t id = 0; id < 257; ++id) {
      const bool ok = matcher.AcceptToken(id);
      if (ok) matcher.Rollback(1);
      if (ok != Bit(mask, id)) Fail("mask and AcceptToken disagree on token " + std::to_string(id));
      if (ok && first < 0) first = id;
    }
    if (first < 0) Fail("empty mask before termination");
    int32_t pick = first;
    if (next < data.size()) {
      const auto b = static_cast<uint8_t>(data[next++]);
      if (Bit(mask, b)) pick = b;
    }
    if (!matcher.AcceptToken(pick)) Fail("allowed token rejected");
  }
}

}  // namespace moeserve::fuzz

#ifndef MOESERVE_TESTS_STRUCTURED_STRUCTURED_TEST_UTIL_H_
#define MOESERVE_TESTS_STRUCTURED_STRUCTURED_TEST_UTIL_H_

// Shared helpers of the structured-output tests: a byte vocabulary (one token per byte) for
// language tests, and whole-string matching through a GrammarMatcher.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/structured/gbnf_parser.h"
#include "server/structured/matcher.h"
#include "server/structured/vocabulary.h"

namespace moeserve::structured::testing {

// 256 tokens, token i = byte i; stop id 256 (mask size 257).
inline std::shared_ptr<const TokenVocabulary> ByteVocab() {
  static const auto* vocab = [] {
    std::vector<std::optional<std::string>> bytes(257);
    for (int i = 0; i < 256; ++i) bytes[i] = std::string(1, static_cast<char>(i));
    return new std::shared_ptr<const TokenVocabulary>(
        *TokenVocabulary::Create(std::move(bytes), {.mask_size = 257, .stop_ids = {256}}));
  }();
  return *vocab;
}

inline absl::StatusOr<std::shared_ptr<const CompiledGrammar>> CompileBytes(const Grammar& g) {
  return CompiledGrammar::Compile(g, ByteVocab());
}

// Whether the whole of `text` is a sentence of the compiled grammar.
inline bool Matches(const std::shared_ptr<const CompiledGrammar>& g, std::string_view text) {
  GrammarMatcher m(g);
  return m.AcceptBytes(text) && m.CanEnd();
}

// Whether `text` can be extended to a sentence.
inline bool IsPrefix(const std::shared_ptr<const CompiledGrammar>& g, std::string_view text) {
  GrammarMatcher m(g);
  return m.AcceptBytes(text);
}

}  // namespace moeserve::structured::testing

#endif  // MOESERVE_TESTS_STRUCTURED_STRUCTURED_TEST_UTIL_H_

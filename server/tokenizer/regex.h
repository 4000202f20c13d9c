#ifndef MOESERVE_SERVER_TOKENIZER_REGEX_H_
#define MOESERVE_SERVER_TOKENIZER_REGEX_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace moeserve {

// A compiled PCRE2 pattern in UTF + UCP mode (Unicode \p{..}, \s, \w; look-arounds), JIT-compiled
// where available. Immutable after Compile; safe for concurrent use (match state is per call).
class Regex {
 public:
  // \s and \S mean Unicode White_Space, as in Oniguruma (not PCRE2's \s, which adds U+180E).
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  // A pattern matching `literal` exactly.
  static absl::StatusOr<std::unique_ptr<Regex>> Literal(std::string_view literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte ranges of the successive non-overlapping, non-empty matches in
  // `text` (left to right, as Rust's find_iter). REQUIRES: `text` is valid UTF-8.
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;

 private:
  explicit Regex(void* code, bool jit) : code_(code), jit_(jit) {}
  void* code_;  // pcre2_code_8*
  bool jit_;
};

// Compiles a tokenizer.json `pattern` object: {"String": literal} or {"Regex": pcre}.
absl::StatusOr<std::unique_ptr<Regex>> MakePattern(const nlohmann::json& pattern);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_REGEX_H_

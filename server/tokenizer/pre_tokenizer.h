#ifndef MOESERVE_SERVER_TOKENIZER_PRE_TOKENIZER_H_
#define MOESERVE_SERVER_TOKENIZER_PRE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace moeserve {

// A piece of normalized text on its way to the model.
struct PreToken {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the input (for Metaspace prepend_scheme "first")
};

// One `pre_tokenizer` of tokenizer.json: Split (PCRE2), ByteLevel, Digits, Metaspace, Whitespace,
// WhitespaceSplit and Sequence. Immutable; safe for concurrent use.
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece of `pieces` further (and may rewrite them, e.g. to byte-level text).
  virtual void PreTokenize(std::vector<PreToken>* pieces) const = 0;
};

// Builds the pre-tokenizer described by `json` (null: returns nullptr). Unsupported types fail with
// InvalidArgument naming the type.
absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& json);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_PRE_TOKENIZER_H_

#ifndef MOESERVE_SERVER_TOKENIZER_NORMALIZER_H_
#define MOESERVE_SERVER_TOKENIZER_NORMALIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace moeserve {

// One `normalizer` of tokenizer.json: NFC/NFD/NFKC/NFKD (ICU), Lowercase, Replace (string or
// regex), Prepend, Strip and Sequence. Immutable; safe for concurrent use.
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `text` (valid UTF-8) in place.
  virtual void Normalize(std::string* text) const = 0;
};

// Builds the normalizer described by `json` (an object, or null for none: returns nullptr).
// Unsupported types fail with InvalidArgument naming the type.
absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& json);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_NORMALIZER_H_

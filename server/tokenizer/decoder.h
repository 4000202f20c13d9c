#ifndef MOESERVE_SERVER_TOKENIZER_DECODER_H_
#define MOESERVE_SERVER_TOKENIZER_DECODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace moeserve {

// One `decoder` of tokenizer.json: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace and
// Sequence. Like HF's decode_chain, it maps token strings to text pieces that are then joined.
// Immutable; safe for concurrent use.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
  // Rewrites one token into the raw bytes it adds to a text in the middle of a sequence (no
  // lossy UTF-8 repair, no stripping that only applies at the start of the text). `*fused`: a
  // Fuse ran earlier in the chain, so that Strip applies to the whole text, not to each token.
  virtual void TokenBytes(std::string* token, bool* fused) const = 0;
};

// Builds the decoder described by `json` (null: returns nullptr).
absl::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& json);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_DECODER_H_

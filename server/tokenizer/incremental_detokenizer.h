#ifndef MOESERVE_SERVER_TOKENIZER_INCREMENTAL_DETOKENIZER_H_
#define MOESERVE_SERVER_TOKENIZER_INCREMENTAL_DETOKENIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve {

// Turns a stream of generated ids into text deltas for one request. Each Step() returns only
// text whose characters are complete: a delta is held back while the decoded window ends in
// U+FFFD (a partial UTF-8 sequence) or in a <0xNN> byte-fallback token (the run may continue),
// and Flush() releases what is held at the end. The
// concatenation of all deltas and Flush() equals Decode(generated ids) whenever the decoder is
// context-free past the first token (byte-level BPE, SentencePiece BPE). Prompt ids only give
// context; their text is never emitted.
//
// Decodes a window that starts a few tokens before the last emitted position (as vLLM does), so a
// step costs O(window), not O(sequence). Requires external synchronization; `tokenizer` must
// outlive it.
class IncrementalDetokenizer {
 public:
  IncrementalDetokenizer(const Tokenizer* tokenizer, absl::Span<const int32_t> prompt_ids, bool skip_special_tokens);

  // Appends `id`; returns the newly completed text (often empty).
  std::string Step(int32_t id);
  // Returns any text still held back (e.g. a trailing partial character as U+FFFD).
  std::string Flush();

  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  // Decodes ids_[begin, end).
  std::string DecodeRange(size_t begin, size_t end) const;

  static constexpr size_t kContextTokens = 5;
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_;  // start of the decode window
  size_t read_offset_;    // text up to here has been emitted
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_INCREMENTAL_DETOKENIZER_H_

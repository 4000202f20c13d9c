#ifndef MOESERVE_SERVER_TOKENIZER_LLAMA2C_VOCAB_H_
#define MOESERVE_SERVER_TOKENIZER_LLAMA2C_VOCAB_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moeserve {

// The two files of a Hugging Face tokenizer directory, as text.
struct ConvertedTokenizer {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};

// Converts a llama2.c vocabulary (`tokenizer.bin`/`tok512.bin`: int32 max_token_length, then per
// token a float32 score, an int32 byte length and the bytes) into what Hugging Face's Llama
// converter would produce for the SentencePiece model it came from: a BPE with byte_fallback,
// `<unk>` 0, `<s>` 1 (BOS, added by default), `</s>` 2 (EOS), "▁" for spaces and a dummy prefix.
//
// llama2.c encodes by repeatedly merging the adjacent pair whose concatenation is the vocabulary
// entry with the highest score. The merges list therefore holds every pair of entries whose
// concatenation is an entry, ranked by that entry's score (descending), so that HF's BPE (lowest
// rank first) makes the same choices.
absl::StatusOr<ConvertedTokenizer> ConvertLlama2cVocab(const std::string& tok_bin_path);

// Same, from the bytes of the file.
absl::StatusOr<ConvertedTokenizer> ConvertLlama2cVocabBytes(std::string_view tok_bin);

// Writes tokenizer.json and tokenizer_config.json into `dir` (which must exist).
absl::Status WriteConvertedTokenizer(const ConvertedTokenizer& tokenizer, const std::string& dir);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_LLAMA2C_VOCAB_H_

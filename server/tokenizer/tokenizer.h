#ifndef MOESERVE_SERVER_TOKENIZER_TOKENIZER_H_
#define MOESERVE_SERVER_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/tokenizer/added_vocabulary.h"

namespace moeserve {

class BpeModel;
class Decoder;
class Normalizer;
class PreTokenizer;

// A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) that encodes and decodes
// exactly as the `tokenizers` library does: added tokens are matched first (raw text, then
// normalized text), the rest is normalized, pre-tokenized and split by the BPE model. BOS/EOS come
// from add_bos_token/add_eos_token in the config when it sets either, else from the
// post-processor (TemplateProcessing, Bert/Roberta).
// Immutable after load; safe for concurrent use.
class Tokenizer {
 public:
  // Reads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromDirectory(const std::string& dir);
  // `tokenizer_config_json` may be empty.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json,
                                                             std::string_view tokenizer_config_json);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Invalid UTF-8 in `text` -> InvalidArgument (never replaced silently).
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens = true) const;
  // Unknown ids are skipped, as in HF. Partial UTF-8 sequences decode to U+FFFD.
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids, bool skip_special_tokens = false) const;

  int32_t vocab_size() const { return vocab_size_; }  // max id + 1 including added tokens
  std::optional<int32_t> bos_token_id() const { return bos_id_; }
  std::optional<int32_t> eos_token_id() const { return eos_id_; }
  std::optional<int32_t> TokenToId(std::string_view token) const;
  std::optional<std::string> IdToToken(int32_t id) const;
  bool IsSpecial(int32_t id) const { return special_ids_.contains(id); }
  // The raw bytes token `id` adds to a decoded text in the middle of a sequence (byte-level and
  // <0xNN> tokens as bytes, no U+FFFD repair, no stripping that applies only at the text's
  // start); what structured-output masks match. nullopt for an id outside the vocabulary.
  std::optional<std::string> TokenBytes(int32_t id) const;

 private:
  Tokenizer();
  absl::Status LoadConfig(std::string_view config_json, const void* post_processor_json);
  // Appends the ids of a stretch of input without added tokens.
  void EncodeText(std::string_view text, bool at_start, std::vector<int32_t>* ids) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<AddedTokenMatcher> raw_matcher_;         // normalized: false
  std::unique_ptr<AddedTokenMatcher> normalized_matcher_;  // normalized: true
  absl::flat_hash_map<int32_t, std::string> added_id_to_token_;
  absl::flat_hash_map<std::string, int32_t> added_token_to_id_;
  absl::flat_hash_set<int32_t> special_ids_;
  std::vector<int32_t> prefix_ids_, suffix_ids_;  // added around a sequence by add_special_tokens
  std::optional<int32_t> bos_id_, eos_id_;
  int32_t vocab_size_ = 0;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_TOKENIZER_TOKENIZER_H_

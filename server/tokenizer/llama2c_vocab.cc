#include "server/tokenizer/llama2c_vocab.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "server/common/mapped_file.h"
#include "server/common/status_macros.h"
#include "server/tokenizer/unicode.h"

namespace moeserve {
namespace {

using OrderedJson = nlohmann::ordered_json;

constexpr int32_t kUnkId = 0;
constexpr int32_t kBosId = 1;
constexpr int32_t kEosId = 2;
constexpr int32_t kFirstByteId = 3;            // <0x00>
constexpr int32_t kFirstNormalId = 259;        // after the 256 byte tokens
constexpr char kMetaspace[] = "\xE2\x96\x81";  // U+2581 "▁"

struct Entry {
  std::string piece;  // as in tokenizer.json ("▁" for spaces)
  float score;
};

absl::StatusOr<std::vector<Entry>> ParseVocab(std::string_view bin) {
  auto read = [&bin](size_t* pos, void* out, size_t n) {
    if (*pos + n > bin.size()) return false;
    std::memcpy(out, bin.data() + *pos, n);
    *pos += n;
    return true;
  };
  size_t pos = 0;
  int32_t max_token_length = 0;
  if (!read(&pos, &max_token_length, 4) || max_token_length <= 0) {
    return absl::InvalidArgumentError("llama2.c vocabulary: bad header");
  }
  std::vector<Entry> entries;
  while (pos < bin.size()) {
    float score = 0;
    int32_t len = 0;
    if (!read(&pos, &score, 4) || !read(&pos, &len, 4) || len < 0 || pos + static_cast<size_t>(len) > bin.size()) {
      return absl::InvalidArgumentError(absl::StrCat("llama2.c vocabulary: truncated at token ", entries.size()));
    }
    std::string bytes(bin.substr(pos, len));
    pos += len;
    const int32_t id = static_cast<int32_t>(entries.size());
    std::string piece;
    if (id == kUnkId) {
      piece = "<unk>";
    } else if (id == kBosId) {
      piece = "<s>";
    } else if (id == kEosId) {
      piece = "</s>";
    } else if (id < kFirstNormalId) {
      piece = absl::StrFormat("<0x%02X>", id - kFirstByteId);
      if (bytes != piece) {
        return absl::InvalidArgumentError(
            absl::StrCat("llama2.c vocabulary: expected byte token ", piece, " at id ", id));
      }
    } else {
      if (!IsValidUtf8(bytes)) {
        return absl::InvalidArgumentError(absl::StrCat("llama2.c vocabulary: token ", id, " is not valid UTF-8"));
      }
      piece = absl::StrReplaceAll(bytes, {{" ", kMetaspace}});
    }
    entries.push_back({std::move(piece), score});
  }
  if (entries.size() <= kFirstNormalId) {
    return absl::InvalidArgumentError("llama2.c vocabulary: fewer than 260 tokens");
  }
  return entries;
}

OrderedJson AddedToken(int32_t id, const std::string& content) {
  return OrderedJson{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}};
}

OrderedJson StringPattern(const std::string& s) { return OrderedJson{{"String", s}}; }

}  // namespace

absl::StatusOr<ConvertedTokenizer> ConvertLlama2cVocabBytes(std::string_view tok_bin) {
  ASSIGN_OR_RETURN(std::vector<Entry> entries, ParseVocab(tok_bin));
  const int32_t n = static_cast<int32_t>(entries.size());

  absl::flat_hash_map<std::string, int32_t> normal_ids;  // pieces that take part in merges
  for (int32_t id = kFirstNormalId; id < n; ++id) {
    if (!normal_ids.emplace(entries[id].piece, id).second) {
      return absl::InvalidArgumentError(absl::StrCat("llama2.c vocabulary: duplicate token at id ", id));
    }
  }

  // Every split of an entry into two entries is a merge, ranked by the merged entry's score.
  struct Merge {
    float score;
    int32_t merged_id;
    size_t split;
    int32_t left, right;
  };
  std::vector<Merge> merges;
  for (int32_t id = kFirstNormalId; id < n; ++id) {
    const std::string& piece = entries[id].piece;
    for (size_t split = Utf8CharLength(piece[0]); split < piece.size(); split += Utf8CharLength(piece[split])) {
      auto l = normal_ids.find(piece.substr(0, split));
      auto r = normal_ids.find(piece.substr(split));
      if (l != normal_ids.end() && r != normal_ids.end()) {
        merges.push_back({entries[id].score, id, split, l->second, r->second});
      }
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.merged_id != b.merged_id) return a.merged_id < b.merged_id;
    return a.split < b.split;
  });

  OrderedJson vocab = OrderedJson::object();
  for (int32_t id = 0; id < n; ++id) vocab[entries[id].piece] = id;
  OrderedJson merges_json = OrderedJson::array();
  for (const Merge& m : merges) {
    merges_json.push_back(OrderedJson::array({entries[m.left].piece, entries[m.right].piece}));
  }

  OrderedJson tok;
  tok["version"] = "1.0";
  tok["truncation"] = nullptr;
  tok["padding"] = nullptr;
  tok["added_tokens"] =
      OrderedJson::array({AddedToken(kUnkId, "<unk>"), AddedToken(kBosId, "<s>"), AddedToken(kEosId, "</s>")});
  tok["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers", OrderedJson::array({
                          {{"type", "Prepend"}, {"prepend", kMetaspace}},
                          {{"type", "Replace"}, {"pattern", StringPattern(" ")}, {"content", kMetaspace}},
                      })}};
  tok["pre_tokenizer"] = nullptr;
  auto special = [](const char* id) { return OrderedJson{{"SpecialToken", {{"id", id}, {"type_id", 0}}}}; };
  auto sequence = [](const char* id, int type_id) {
    return OrderedJson{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  tok["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", OrderedJson::array({special("<s>"), sequence("A", 0)})},
      {"pair", OrderedJson::array({special("<s>"), sequence("A", 0), special("<s>"), sequence("B", 1)})},
      {"special_tokens",
       {{"<s>", {{"id", "<s>"}, {"ids", OrderedJson::array({kBosId})}, {"tokens", OrderedJson::array({"<s>"})}}}}}};
  tok["decoder"] = {{"type", "Sequence"},
                    {"decoders", OrderedJson::array({
                                     {{"type", "Replace"}, {"pattern", StringPattern(kMetaspace)}, {"content", " "}},
                                     {{"type", "ByteFallback"}},
                                     {{"type", "Fuse"}},
                                     {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}},
                                 })}};
  tok["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", "<unk>"},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", true},
                  {"byte_fallback", true},
                  {"ignore_merges", false},
                  {"vocab", std::move(vocab)},
                  {"merges", std::move(merges_json)}};

  OrderedJson config;
  config["add_bos_token"] = true;
  config["add_eos_token"] = false;
  config["bos_token"] = "<s>";
  config["eos_token"] = "</s>";
  config["unk_token"] = "<unk>";
  config["clean_up_tokenization_spaces"] = false;
  config["legacy"] = true;
  config["model_max_length"] = 512;
  // Not LlamaTokenizerFast: transformers 5 rebuilds that class with a Metaspace pre-tokenizer,
  // which differs from tokenizer.json after special-token text; this class uses the file as is.
  config["tokenizer_class"] = "PreTrainedTokenizerFast";

  ConvertedTokenizer out;
  out.tokenizer_json = tok.dump(2, ' ', /*ensure_ascii=*/false) + "\n";
  out.tokenizer_config_json = config.dump(2, ' ', false) + "\n";
  return out;
}

absl::StatusOr<ConvertedTokenizer> ConvertLlama2cVocab(const std::string& tok_bin_path) {
  ASSIGN_OR_RETURN(std::string bin, ReadFileToString(tok_bin_path));
  auto converted = ConvertLlama2cVocabBytes(bin);
  if (!converted.ok()) {
    return absl::Status(converted.status().code(), absl::StrCat(tok_bin_path, ": ", converted.status().message()));
  }
  return converted;
}

absl::Status WriteConvertedTokenizer(const ConvertedTokenizer& tokenizer, const std::string& dir) {
  const std::filesystem::path d(dir);
  RETURN_IF_ERROR(WriteStringToFile((d / "tokenizer.json").string(), tokenizer.tokenizer_json));
  return WriteStringToFile((d / "tokenizer_config.json").string(), tokenizer.tokenizer_config_json);
}

}  // namespace moeserve

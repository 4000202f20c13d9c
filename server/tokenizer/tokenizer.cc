#include "server/tokenizer/tokenizer.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "server/common/mapped_file.h"
#include "server/common/status_macros.h"
#include "server/tokenizer/bpe.h"
#include "server/tokenizer/decoder.h"
#include "server/tokenizer/normalizer.h"
#include "server/tokenizer/pre_tokenizer.h"
#include "server/tokenizer/unicode.h"

namespace moeserve {

using Json = nlohmann::json;

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromDirectory(const std::string& dir) {
  const std::filesystem::path d(dir);
  ASSIGN_OR_RETURN(std::string tokenizer_json, ReadFileToString((d / "tokenizer.json").string()));
  std::string config_json;
  const std::filesystem::path config_path = d / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    ASSIGN_OR_RETURN(config_json, ReadFileToString(config_path.string()));
  }
  auto tokenizer = FromJson(tokenizer_json, config_json);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(), absl::StrCat(dir, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

namespace {

// A token named in tokenizer_config.json: a string or an AddedToken object.
std::optional<std::string> ConfigToken(const Json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const Json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return std::nullopt;
}

absl::StatusOr<Json> ParseJson(std::string_view text, const char* what) {
  Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not a valid JSON object"));
  }
  return json;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json,
                                                               std::string_view tokenizer_config_json) {
  ASSIGN_OR_RETURN(Json json, ParseJson(tokenizer_json, "tokenizer.json"));
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  try {
    ASSIGN_OR_RETURN(t->normalizer_, MakeNormalizer(json.value("normalizer", Json())));
    ASSIGN_OR_RETURN(t->pre_tokenizer_, MakePreTokenizer(json.value("pre_tokenizer", Json())));
    ASSIGN_OR_RETURN(t->decoder_, MakeDecoder(json.value("decoder", Json())));
    if (!json.contains("model")) return absl::InvalidArgumentError("tokenizer.json has no model");
    ASSIGN_OR_RETURN(t->model_, BpeModel::FromJson(json["model"]));
    t->vocab_size_ = t->model_->max_id() + 1;

    std::vector<AddedToken> raw, normalized;
    std::vector<std::string> raw_patterns, normalized_patterns;
    for (const Json& a : json.value("added_tokens", Json::array())) {
      AddedToken token;
      token.id = a.at("id").get<int32_t>();
      token.content = a.at("content").get<std::string>();
      token.single_word = a.value("single_word", false);
      token.lstrip = a.value("lstrip", false);
      token.rstrip = a.value("rstrip", false);
      token.normalized = a.value("normalized", false);
      token.special = a.value("special", false);
      if (token.id < 0) return absl::InvalidArgumentError("negative added token id");
      if (!IsValidUtf8(token.content)) {
        return absl::InvalidArgumentError("added token content is not valid UTF-8");
      }
      t->added_id_to_token_[token.id] = token.content;
      t->added_token_to_id_[token.content] = token.id;
      if (token.special) t->special_ids_.insert(token.id);
      t->vocab_size_ = std::max(t->vocab_size_, token.id + 1);
      if (token.normalized && t->normalizer_ != nullptr) {
        std::string pattern = token.content;
        t->normalizer_->Normalize(&pattern);
        normalized_patterns.push_back(std::move(pattern));
        normalized.push_back(std::move(token));
      } else {
        raw_patterns.push_back(token.content);
        raw.push_back(std::move(token));
      }
    }
    t->raw_matcher_ = std::make_unique<AddedTokenMatcher>(std::move(raw), std::move(raw_patterns));
    t->normalized_matcher_ = std::make_unique<AddedTokenMatcher>(std::move(normalized), std::move(normalized_patterns));

    const Json post = json.value("post_processor", Json());
    RETURN_IF_ERROR(t->LoadConfig(tokenizer_config_json, &post));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
  return t;
}

absl::Status Tokenizer::LoadConfig(std::string_view config_json, const void* post_processor) {
  const Json& post = *static_cast<const Json*>(post_processor);
  Json config = Json::object();
  if (!config_json.empty()) {
    ASSIGN_OR_RETURN(config, ParseJson(config_json, "tokenizer_config.json"));
  }
  auto resolve = [this](const std::optional<std::string>& token,
                        const char* key) -> absl::StatusOr<std::optional<int32_t>> {
    if (!token) return std::optional<int32_t>();
    auto id = TokenToId(*token);
    if (!id) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer_config.json: ", key, " \"", *token, "\" is not in the vocabulary"));
    }
    return id;
  };
  ASSIGN_OR_RETURN(bos_id_, resolve(ConfigToken(config, "bos_token"), "bos_token"));
  ASSIGN_OR_RETURN(eos_id_, resolve(ConfigToken(config, "eos_token"), "eos_token"));

  if (config.contains("add_bos_token") || config.contains("add_eos_token")) {
    // As transformers' Llama-style tokenizers: the config decides, the post-processor is ignored.
    if (config.value("add_bos_token", false)) {
      if (!bos_id_) return absl::InvalidArgumentError("add_bos_token is set but bos_token is not");
      prefix_ids_.push_back(*bos_id_);
    }
    if (config.value("add_eos_token", false)) {
      if (!eos_id_) return absl::InvalidArgumentError("add_eos_token is set but eos_token is not");
      suffix_ids_.push_back(*eos_id_);
    }
    return absl::OkStatus();
  }
  // Otherwise the post-processor's single-sequence template.
  std::vector<const Json*> processors;
  if (post.is_object() && post.value("type", "") == "Sequence") {
    for (const Json& p : post.at("processors")) processors.push_back(&p);
  } else if (post.is_object()) {
    processors.push_back(&post);
  }
  for (const Json* p : processors) {
    const std::string type = p->value("type", "");
    if (type == "TemplateProcessing") {
      bool before = true;
      for (const Json& item : p->at("single")) {
        if (item.contains("Sequence")) {
          before = false;
          continue;
        }
        const std::string name = item.at("SpecialToken").at("id").get<std::string>();
        const Json& special = p->at("special_tokens").at(name);
        for (const Json& id : special.at("ids")) {
          (before ? prefix_ids_ : suffix_ids_).push_back(id.get<int32_t>());
        }
      }
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      prefix_ids_.push_back(p->at("cls").at(1).get<int32_t>());
      suffix_ids_.push_back(p->at("sep").at(1).get<int32_t>());
    }
  }
  return absl::OkStatus();
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  auto it = added_token_to_id_.find(absl::string_view(token.data(), token.size()));
  if (it != added_token_to_id_.end()) return it->second;
  return model_->TokenToId(token);
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  auto it = added_id_to_token_.find(id);
  if (it != added_id_to_token_.end()) return it->second;
  if (const std::string* t = model_->IdToToken(id)) return *t;
  return std::nullopt;
}

void Tokenizer::EncodeText(std::string_view text, bool at_start, std::vector<int32_t>* ids) const {
  std::vector<PreToken> pieces;
  pieces.push_back({std::string(text), at_start});
  if (pre_tokenizer_ != nullptr) pre_tokenizer_->PreTokenize(&pieces);
  for (const PreToken& p : pieces) model_->Tokenize(p.text, ids);
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  const size_t bad = FindInvalidUtf8(text);
  if (bad != text.size()) {
    return absl::InvalidArgumentError(absl::StrCat("input is not valid UTF-8 (first bad byte at offset ", bad, ")"));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids = prefix_ids_;

  std::vector<Segment> raw_segments, segments;
  raw_matcher_->Split(text, &raw_segments);
  std::string normalized;
  for (const Segment& raw : raw_segments) {
    if (raw.token_id >= 0) {
      ids.push_back(raw.token_id);
      continue;
    }
    normalized.assign(text.substr(raw.begin, raw.end - raw.begin));
    if (normalizer_ != nullptr) normalizer_->Normalize(&normalized);
    segments.clear();
    normalized_matcher_->Split(normalized, &segments);
    for (const Segment& s : segments) {
      if (s.token_id >= 0) {
        ids.push_back(s.token_id);
      } else {
        EncodeText(std::string_view(normalized).substr(s.begin, s.end - s.begin), raw.begin == 0 && s.begin == 0, &ids);
      }
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

std::optional<std::string> Tokenizer::TokenBytes(int32_t id) const {
  std::optional<std::string> token = IdToToken(id);
  if (!token.has_value() || decoder_ == nullptr) return token;
  bool fused = false;
  decoder_->TokenBytes(&*token, &fused);
  return token;
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (skip_special_tokens && IsSpecial(id)) continue;
    auto it = added_id_to_token_.find(id);
    if (it != added_id_to_token_.end()) {
      tokens.push_back(it->second);
    } else if (const std::string* t = model_->IdToToken(id)) {
      tokens.push_back(*t);
    }
  }
  if (decoder_ == nullptr) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  decoder_->DecodeChain(&tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace moeserve

#include "server/tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/status_macros.h"
#include "server/tokenizer/regex.h"
#include "server/tokenizer/unicode.h"

namespace moeserve {
namespace {

using Json = nlohmann::json;

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(const icu::Normalizer2* n) : n_(n) {}
  void Normalize(std::string* text) const override {
    UErrorCode status = U_ZERO_ERROR;
    if (n_->isNormalizedUTF8(*text, status) && U_SUCCESS(status)) return;
    status = U_ZERO_ERROR;
    std::string out;
    out.reserve(text->size());
    icu::StringByteSink<std::string> sink(&out);
    n_->normalizeUTF8(0, *text, sink, nullptr, status);
    if (U_SUCCESS(status)) *text = std::move(out);
  }

 private:
  const icu::Normalizer2* n_;  // owned by ICU
};

// Per character full lowercase, as Rust's char::to_lowercase (no context such as final sigma).
class LowercaseNormalizer final : public Normalizer {
 public:
  void Normalize(std::string* text) const override {
    std::string out;
    out.reserve(text->size());
    size_t pos = 0;
    while (pos < text->size()) {
      const uint32_t cp = DecodeUtf8Char(*text, &pos);
      if (cp == 0x130) {  // the one code point whose full lowercase is two characters
        out += "i\xCC\x87";
      } else {
        AppendUtf8(static_cast<uint32_t>(u_tolower(static_cast<UChar32>(cp))), &out);
      }
    }
    *text = std::move(out);
  }
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void Normalize(std::string* text) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    pattern_->FindAll(*text, &matches);
    if (matches.empty()) return;
    std::string out;
    size_t last = 0;
    for (const auto& [b, e] : matches) {
      out.append(*text, last, b - last);
      out += content_;
      last = e;
    }
    out.append(*text, last, std::string::npos);
    *text = std::move(out);
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  void Normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

bool IsWhitespace(uint32_t cp) { return u_isUWhiteSpace(static_cast<UChar32>(cp)); }

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string* text) const override {
    size_t begin = 0, end = text->size();
    if (left_) {
      while (begin < end) {
        size_t p = begin;
        if (!IsWhitespace(DecodeUtf8Char(*text, &p))) break;
        begin = p;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && ((*text)[start] & 0xC0) == 0x80) --start;
        size_t p = start;
        if (!IsWhitespace(DecodeUtf8Char(*text, &p))) break;
        end = start;
      }
    }
    *text = text->substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void Normalize(std::string* text) const override {
    for (const auto& p : parts_) p->Normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const Json& json) {
  if (json.is_null()) return nullptr;
  const std::string type = json.value("type", "");
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* icu_normalizer = nullptr;
  if (type == "NFC") icu_normalizer = icu::Normalizer2::getNFCInstance(status);
  if (type == "NFD") icu_normalizer = icu::Normalizer2::getNFDInstance(status);
  if (type == "NFKC") icu_normalizer = icu::Normalizer2::getNFKCInstance(status);
  if (type == "NFKD") icu_normalizer = icu::Normalizer2::getNFKDInstance(status);
  if (icu_normalizer != nullptr || U_FAILURE(status)) {
    if (U_FAILURE(status)) {
      return absl::InternalError(absl::StrCat("ICU normalizer ", type, ": ", u_errorName(status)));
    }
    return std::make_unique<UnicodeNormalizer>(icu_normalizer);
  }
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Replace") {
    ASSIGN_OR_RETURN(auto pattern, MakePattern(json.at("pattern")));
    return std::make_unique<ReplaceNormalizer>(std::move(pattern), json.at("content").get<std::string>());
  }
  if (type == "Prepend") {
    return std::make_unique<PrependNormalizer>(json.at("prepend").get<std::string>());
  }
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(json.value("strip_left", true), json.value("strip_right", true));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const Json& item : json.at("normalizers")) {
      ASSIGN_OR_RETURN(auto part, MakeNormalizer(item));
      if (part != nullptr) parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported normalizer type \"", type, "\""));
}

}  // namespace moeserve

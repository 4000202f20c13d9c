#include "server/tokenizer/pre_tokenizer.h"

#include <unicode/uchar.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "server/common/status_macros.h"
#include "server/tokenizer/byte_level.h"
#include "server/tokenizer/regex.h"
#include "server/tokenizer/unicode.h"

namespace moeserve {
namespace {

using Json = nlohmann::json;
using Ranges = std::vector<std::pair<size_t, size_t>>;

// GPT-2's pattern, used by ByteLevel with use_regex.
constexpr char kGpt2Pattern[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

absl::StatusOr<Behavior> ParseBehavior(const std::string& s) {
  if (s == "Removed") return Behavior::kRemoved;
  if (s == "Isolated") return Behavior::kIsolated;
  if (s == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::kMergedWithNext;
  if (s == "Contiguous") return Behavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat("unsupported split behavior \"", s, "\""));
}

// Splits `piece` around `matches` (sorted, non-overlapping) as HF's NormalizedString::split does.
void SplitPiece(const PreToken& piece, const Ranges& matches, Behavior behavior, bool invert,
                std::vector<PreToken>* out) {
  // (range, is_match) covering the whole text.
  std::vector<std::pair<std::pair<size_t, size_t>, bool>> parts;
  size_t last = 0;
  for (const auto& m : matches) {
    if (m.first > last) parts.push_back({{last, m.first}, invert});
    parts.push_back({m, !invert});
    last = m.second;
  }
  if (last < piece.text.size()) parts.push_back({{last, piece.text.size()}, invert});

  std::vector<std::pair<size_t, size_t>> pieces;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const auto& [r, is_match] : parts) {
        if (!is_match) pieces.push_back(r);
      }
      break;
    case Behavior::kIsolated:
      for (const auto& [r, is_match] : parts) pieces.push_back(r);
      break;
    case Behavior::kContiguous: {
      bool prev_match = false;
      for (const auto& [r, is_match] : parts) {
        if (is_match && prev_match && !pieces.empty()) {
          pieces.back().second = r.second;
        } else {
          pieces.push_back(r);
        }
        prev_match = is_match;
      }
      break;
    }
    case Behavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (const auto& [r, is_match] : parts) {
        if (is_match && !prev_match && !pieces.empty()) {
          pieces.back().second = r.second;
        } else {
          pieces.push_back(r);
        }
        prev_match = is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool prev_match = false;
      for (const auto& [r, is_match] : parts) {
        if (!is_match && prev_match && !pieces.empty()) {
          pieces.back().second = r.second;
        } else {
          pieces.push_back(r);
        }
        prev_match = is_match;
      }
      break;
    }
  }
  for (const auto& [b, e] : pieces) {
    if (e > b) out->push_back({piece.text.substr(b, e - b), piece.at_start && b == 0});
  }
}

template <typename Fn>  // Fn(const std::string&, Ranges*) finds the matches in one piece
void SplitAll(std::vector<PreToken>* pieces, Behavior behavior, bool invert, Fn find) {
  std::vector<PreToken> out;
  out.reserve(pieces->size() * 2);
  Ranges matches;
  for (const PreToken& piece : *pieces) {
    matches.clear();
    find(piece.text, &matches);
    SplitPiece(piece, matches, behavior, invert, &out);
  }
  *pieces = std::move(out);
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    SplitAll(pieces, behavior_, invert_, [this](const std::string& text, Ranges* m) { regex_->FindAll(text, m); });
  }

 private:
  std::unique_ptr<Regex> regex_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    if (add_prefix_space_) {
      for (PreToken& p : *pieces) {
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
      }
    }
    if (regex_ != nullptr) {
      SplitAll(pieces, Behavior::kIsolated, false,
               [this](const std::string& text, Ranges* m) { regex_->FindAll(text, m); });
    }
    std::string mapped;
    for (PreToken& p : *pieces) {
      mapped.clear();
      AppendByteLevel(p.text, &mapped);
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;  // null without use_regex
};

bool IsNumeric(uint32_t cp) {
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

class DigitsPreTokenizer final : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    SplitAll(pieces, individual_ ? Behavior::kIsolated : Behavior::kContiguous, false,
             [](const std::string& text, Ranges* m) {
               size_t pos = 0;
               while (pos < text.size()) {
                 const size_t start = pos;
                 if (IsNumeric(DecodeUtf8Char(text, &pos))) m->emplace_back(start, pos);
               }
             });
  }

 private:
  bool individual_;
};

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    for (PreToken& p : *pieces) {
      p.text = absl::StrReplaceAll(p.text, {{" ", replacement_}});
      const bool prepend = prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.at_start);
      if (prepend && p.text.compare(0, replacement_.size(), replacement_) != 0) {
        p.text.insert(0, replacement_);
      }
    }
    if (split_) {
      SplitAll(pieces, Behavior::kMergedWithNext, false, [this](const std::string& text, Ranges* m) {
        for (size_t pos = text.find(replacement_); pos != std::string::npos;
             pos = text.find(replacement_, pos + replacement_.size())) {
          m->emplace_back(pos, pos + replacement_.size());
        }
      });
    }
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    for (const auto& p : parts_) p->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const Json& json) {
  if (json.is_null()) return nullptr;
  const std::string type = json.value("type", "");
  if (type == "Split") {
    ASSIGN_OR_RETURN(auto regex, MakePattern(json.at("pattern")));
    ASSIGN_OR_RETURN(Behavior behavior, ParseBehavior(json.at("behavior").get<std::string>()));
    return std::make_unique<SplitPreTokenizer>(std::move(regex), behavior, json.value("invert", false));
  }
  if (type == "ByteLevel") {
    std::unique_ptr<Regex> regex;
    if (json.value("use_regex", true)) {
      ASSIGN_OR_RETURN(regex, Regex::Compile(kGpt2Pattern));
    }
    return std::make_unique<ByteLevelPreTokenizer>(json.value("add_prefix_space", true), std::move(regex));
  }
  if (type == "Digits") {
    return std::make_unique<DigitsPreTokenizer>(json.value("individual_digits", false));
  }
  if (type == "Metaspace") {
    auto prepend = MetaspacePreTokenizer::Prepend::kAlways;
    if (json.contains("prepend_scheme")) {
      const std::string scheme = json["prepend_scheme"].get<std::string>();
      if (scheme == "first") prepend = MetaspacePreTokenizer::Prepend::kFirst;
      if (scheme == "never") prepend = MetaspacePreTokenizer::Prepend::kNever;
    } else if (!json.value("add_prefix_space", true)) {
      prepend = MetaspacePreTokenizer::Prepend::kNever;
    }
    return std::make_unique<MetaspacePreTokenizer>(json.value("replacement", "\xE2\x96\x81"), prepend,
                                                   json.value("split", true));
  }
  if (type == "Whitespace") {
    ASSIGN_OR_RETURN(auto regex, Regex::Compile(R"(\w+|[^\w\s]+)"));
    return std::make_unique<SplitPreTokenizer>(std::move(regex), Behavior::kRemoved, true);
  }
  if (type == "WhitespaceSplit") {
    ASSIGN_OR_RETURN(auto regex, Regex::Compile(R"(\s+)"));
    return std::make_unique<SplitPreTokenizer>(std::move(regex), Behavior::kRemoved, false);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const Json& item : json.at("pretokenizers")) {
      ASSIGN_OR_RETURN(auto part, MakePreTokenizer(item));
      if (part != nullptr) parts.push_back(std::move(part));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported pre_tokenizer type \"", type, "\""));
}

}  // namespace moeserve

#include "server/tokenizer/decoder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "server/common/status_macros.h"
#include "server/tokenizer/byte_level.h"
#include "server/tokenizer/unicode.h"

namespace moeserve {
namespace {

using Json = nlohmann::json;
constexpr char kReplacementChar[] = "\xEF\xBF\xBD";

// Maps every token back to bytes (tokens with characters outside the byte map stay as they are)
// and returns one lossily decoded string.
class ByteLevelDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& t : *tokens) {
      const size_t mark = bytes.size();
      if (!ByteLevelToBytes(t, &bytes)) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens->assign(1, Utf8Lossy(bytes));
  }
  void TokenBytes(std::string* token, bool* fused) const override {
    std::string bytes;
    if (ByteLevelToBytes(*token, &bytes)) *token = std::move(bytes);
    *fused = true;  // the chain's output is one string
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) t = absl::StrReplaceAll(t, {{from_, to_}});
  }
  void TokenBytes(std::string* token, bool* fused) const override {
    *token = absl::StrReplaceAll(*token, {{from_, to_}});
  }

 private:
  std::string from_, to_;
};

// Parses "<0xNN>"; returns -1 for other tokens.
int ParseByteToken(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// Runs of <0xNN> tokens become their bytes when those form valid UTF-8, else one U+FFFD each.
class ByteFallbackDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t count = 0;
    auto flush = [&] {
      if (count == 0) return;
      if (IsValidUtf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < count; ++i) out.push_back(kReplacementChar);
      }
      bytes.clear();
      count = 0;
    };
    for (std::string& t : *tokens) {
      const int b = ParseByteToken(t);
      if (b >= 0) {
        bytes.push_back(static_cast<char>(b));
        ++count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    *tokens = std::move(out);
  }
  void TokenBytes(std::string* token, bool* fused) const override {
    const int b = ParseByteToken(*token);
    if (b >= 0) token->assign(1, static_cast<char>(b));
  }
};

class FuseDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const std::string& t : *tokens) all += t;
    tokens->assign(1, std::move(all));
  }
  void TokenBytes(std::string* token, bool* fused) const override { *fused = true; }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      size_t b = 0, e = t.size();
      for (size_t i = 0; i < start_ && t.compare(b, content_.size(), content_) == 0; ++i) {
        b += content_.size();
      }
      for (size_t i = 0;
           i < stop_ && e >= b + content_.size() && t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
  }
  void TokenBytes(std::string* token, bool* fused) const override {
    if (*fused) return;  // strips the ends of the whole text only
    std::vector<std::string> one{std::move(*token)};
    DecodeChain(&one);
    *token = std::move(one[0]);
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      t = absl::StrReplaceAll(t, {{replacement_, " "}});
      if (i == 0 && strip_first_ && !t.empty() && t[0] == ' ') t.erase(0, 1);
    }
  }
  void TokenBytes(std::string* token, bool* fused) const override {
    *token = absl::StrReplaceAll(*token, {{replacement_, " "}});
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& p : parts_) p->DecodeChain(tokens);
  }
  void TokenBytes(std::string* token, bool* fused) const override {
    for (const auto& p : parts_) p->TokenBytes(token, fused);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const Json& json) {
  if (json.is_null()) return nullptr;
  const std::string type = json.value("type", "");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    const Json& pattern = json.at("pattern");
    if (!pattern.contains("String")) {
      return absl::InvalidArgumentError("Replace decoder: only String patterns are supported");
    }
    return std::make_unique<ReplaceDecoder>(pattern["String"].get<std::string>(),
                                            json.at("content").get<std::string>());
  }
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(json.at("content").get<std::string>(), json.value("start", 0),
                                          json.value("stop", 0));
  }
  if (type == "Metaspace") {
    bool strip_first = json.value("add_prefix_space", true);
    if (json.contains("prepend_scheme")) strip_first = json["prepend_scheme"] != "never";
    return std::make_unique<MetaspaceDecoder>(json.value("replacement", "\xE2\x96\x81"), strip_first);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const Json& item : json.at("decoders")) {
      ASSIGN_OR_RETURN(auto part, MakeDecoder(item));
      if (part != nullptr) parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported decoder type \"", type, "\""));
}

}  // namespace moeserve

#include "clients/bench/dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace moeserve::bench {
namespace {

bool StartsWith(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

int DrawLength(int len, double ratio, std::mt19937_64* rng) {
  int lo = std::max(1, static_cast<int>(std::floor(len * (1.0 - ratio))));
  int hi = std::max(lo, static_cast<int>(std::ceil(len * (1.0 + ratio))));
  if (ratio <= 0) return std::max(1, len);
  return std::uniform_int_distribution<int>(lo, hi)(*rng);
}

std::vector<int32_t> DrawIds(int n, int vocab, std::mt19937_64* rng) {
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  std::vector<int32_t> ids(n);
  for (int32_t& t : ids) t = id(*rng);
  return ids;
}

absl::StatusOr<std::vector<std::string>> ReadShareGpt(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("sharegpt: cannot read ", path));
  nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array()) return absl::InvalidArgumentError(absl::StrCat(path, ": expected a JSON array"));
  std::vector<std::string> prompts;
  for (const nlohmann::json& entry : doc) {
    if (!entry.is_object() || !entry.contains("conversations")) continue;
    const nlohmann::json& turns = entry["conversations"];
    if (!turns.is_array() || turns.empty()) continue;
    const nlohmann::json& first = turns[0];
    if (!first.is_object() || !first.contains("value") || !first["value"].is_string()) continue;
    std::string text = first["value"].get<std::string>();
    if (!text.empty()) prompts.push_back(std::move(text));
  }
  return prompts;
}

// A line is a JSON object with "prompt", "text" or "turns" (first turn), a JSON string, or else
// the raw line as the prompt.
absl::StatusOr<std::vector<std::string>> ReadJsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("jsonl: cannot read ", path));
  std::vector<std::string> prompts;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    std::string text;
    if (j.is_string()) {
      text = j.get<std::string>();
    } else if (j.is_object()) {
      for (const char* key : {"prompt", "text"}) {
        if (j.contains(key) && j[key].is_string()) {
          text = j[key].get<std::string>();
          break;
        }
      }
      if (text.empty() && j.contains("turns") && j["turns"].is_array() && !j["turns"].empty() &&
          j["turns"][0].is_string()) {
        text = j["turns"][0].get<std::string>();
      }
    } else {
      text = line;
    }
    if (!text.empty()) prompts.push_back(std::move(text));
  }
  return prompts;
}

}  // namespace

bool DatasetNeedsVocab(const std::string& spec) { return spec == "random" || spec == "prefix-repetition"; }

absl::StatusOr<std::vector<BenchPrompt>> LoadDataset(const DatasetOptions& o) {
  if (o.num_prompts < 0) return absl::InvalidArgumentError("number of prompts must be >= 0");
  if (o.output_len < 1) return absl::InvalidArgumentError("--output-len must be >= 1");
  if (o.range_ratio < 0 || o.range_ratio >= 1) {
    return absl::InvalidArgumentError("--range-ratio must be in [0, 1)");
  }
  std::mt19937_64 rng(o.seed ^ 0x9e3779b97f4a7c15ull);
  std::vector<BenchPrompt> out;
  out.reserve(o.num_prompts);
  if (DatasetNeedsVocab(o.spec)) {
    if (o.vocab_size < 1) return absl::InvalidArgumentError("vocabulary size must be >= 1");
    if (o.input_len < (o.spec == "random" ? 1 : 0)) {
      return absl::InvalidArgumentError("--input-len is too small");
    }
    std::vector<std::vector<int32_t>> prefixes;
    if (o.spec == "prefix-repetition") {
      if (o.num_prefixes < 1 || o.prefix_len < 1) {
        return absl::InvalidArgumentError("--num-prefixes and --prefix-len must be >= 1");
      }
      for (int i = 0; i < o.num_prefixes; ++i) prefixes.push_back(DrawIds(o.prefix_len, o.vocab_size, &rng));
    }
    for (int i = 0; i < o.num_prompts; ++i) {
      BenchPrompt p;
      if (!prefixes.empty()) p.token_ids = prefixes[i % prefixes.size()];
      int suffix = o.input_len > 0 ? DrawLength(o.input_len, o.range_ratio, &rng) : 0;
      std::vector<int32_t> ids = DrawIds(suffix, o.vocab_size, &rng);
      p.token_ids.insert(p.token_ids.end(), ids.begin(), ids.end());
      p.input_tokens = static_cast<int>(p.token_ids.size());
      p.output_tokens = DrawLength(o.output_len, o.range_ratio, &rng);
      out.push_back(std::move(p));
    }
    return out;
  }
  absl::StatusOr<std::vector<std::string>> texts;
  if (StartsWith(o.spec, "sharegpt:")) {
    texts = ReadShareGpt(o.spec.substr(9));
  } else if (StartsWith(o.spec, "jsonl:")) {
    texts = ReadJsonl(o.spec.substr(6));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown dataset '", o.spec, "' (random, sharegpt:FILE, jsonl:FILE, prefix-repetition)"));
  }
  if (!texts.ok()) return texts.status();
  if (texts->empty()) return absl::InvalidArgumentError(absl::StrCat(o.spec, ": no prompts found"));
  for (int i = 0; i < o.num_prompts; ++i) {
    BenchPrompt p;
    p.text = (*texts)[i % texts->size()];
    p.output_tokens = o.output_len;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace moeserve::bench

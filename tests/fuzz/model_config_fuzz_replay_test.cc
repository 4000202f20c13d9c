// Runs the body of the config.json fuzz target without libFuzzer over its seed corpus
// (tests/fuzz/corpus/model_config/: the shipped and fixture configs), every prefix and one-byte
// mutation of each, and each seed with every integer field set to extreme values, so that CI
// checks the target's invariants on any compiler.

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fuzz/fuzz_replay.h"

namespace moeserve {
namespace {

using fuzz::FuzzOne;

std::vector<std::string> Seeds() {
  return fuzz::ReadCorpus(std::filesystem::path(MOESERVE_SOURCE_DIR) / "tests/fuzz/corpus/model_config");
}

TEST(ModelConfigFuzzReplay, CorpusPrefixesAndMutations) {
  const std::vector<std::string> seeds = Seeds();
  ASSERT_GE(seeds.size(), 5u);
  for (const std::string& seed : seeds) {
    FuzzOne(seed);
    for (size_t len = 0; len < seed.size(); len += 7) FuzzOne(seed.substr(0, len));
    for (size_t i = 0; i < seed.size(); i += 3) {
      for (const char c : {'\0', '9', '-', '"', '{', '[', ',', 'e', '.'}) {
        std::string mutated = seed;
        mutated[i] = c;
        FuzzOne(mutated);
      }
    }
  }
}

// Calls `body` with `config` where the number at each path (nested objects and arrays too) is
// replaced by each of `values`.
template <typename F>
void EveryNumber(const nlohmann::json& config, nlohmann::json& node, const std::vector<nlohmann::json>& values,
                 const F& body) {
  if (node.is_number()) {
    const nlohmann::json saved = node;
    for (const nlohmann::json& v : values) {
      node = v;
      body(config);
    }
    node = saved;
  } else if (node.is_object() || node.is_array()) {
    for (auto& child : node) EveryNumber(config, child, values, body);
  }
}

TEST(ModelConfigFuzzReplay, AbsurdNumbersInNestedFields) {
  const std::vector<nlohmann::json> values = {
      0, -1, int64_t{1} << 31, 1'000'000'000, std::numeric_limits<int64_t>::max(), 1e300, -1e300, 0.5, 1e-300};
  for (const std::string& seed : Seeds()) {
    nlohmann::json config = nlohmann::json::parse(seed);
    for (auto& [key, value] : config.items()) {
      if (value.is_object() || value.is_array()) {
        EveryNumber(config, value, values, [](const nlohmann::json& c) { FuzzOne(c.dump()); });
      }
    }
  }
}

TEST(ModelConfigFuzzReplay, ExtremeIntegersInEveryField) {
  const int64_t extremes[] = {0,
                              -1,
                              1,
                              3,
                              int64_t{1} << 31,
                              (int64_t{1} << 31) - 1,
                              1'000'000'000,
                              int64_t{1} << 62,
                              std::numeric_limits<int64_t>::max(),
                              std::numeric_limits<int64_t>::min()};
  for (const std::string& seed : Seeds()) {
    const nlohmann::json config = nlohmann::json::parse(seed);
    for (const auto& [key, value] : config.items()) {
      if (!value.is_number_integer()) continue;
      for (const int64_t v : extremes) {
        nlohmann::json mutated = config;
        mutated[key] = v;
        FuzzOne(mutated.dump());
      }
      nlohmann::json as_float = config;
      as_float[key] = 1e300;
      FuzzOne(as_float.dump());
    }
  }
}

}  // namespace
}  // namespace moeserve

// Runs the body of the structured-output compiler fuzz target without libFuzzer over its seed
// corpus (tests/fuzz/corpus/structured_constraint/) and prefixes and one-byte mutations of each seed, so
// that CI checks the target's invariants on any compiler.

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/structured_fuzz.h"

namespace moeserve {
namespace {

TEST(StructuredFuzzReplay, CorpusPrefixesAndMutations) {
  std::vector<std::string> seeds;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(MOESERVE_SOURCE_DIR) /
                                                           "tests/fuzz/corpus/structured_constraint")) {
    std::ifstream in(e.path(), std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GE(seeds.size(), 10u);
  for (const std::string& seed : seeds) {
    fuzz::FuzzConstraintCompiler(seed);
    const size_t stride = std::max<size_t>(1, seed.size() / 12);
    for (size_t len = 0; len < seed.size(); len += stride) fuzz::FuzzConstraintCompiler(seed.substr(0, len));
    for (size_t i = 1; i < seed.size(); i += stride) {
      for (const char c : {'\0', '\xff', '{', '}', '[', '(', ')', '*', '"', '\\', '|', '?', '1'}) {
        std::string mutated = seed;
        mutated[i] = c;
        fuzz::FuzzConstraintCompiler(mutated);
      }
    }
  }
}

}  // namespace
}  // namespace moeserve

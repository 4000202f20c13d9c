// Runs the body of the safetensors header fuzz target, without libFuzzer, over the malformed-file
// table, the seed corpus and the fixtures, and over every prefix and many one-byte mutations of
// each valid file, so that CI exercises the target's invariants on any compiler.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/fuzz_replay.h"
#include "tests/model/malformed_safetensors.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

using fuzz::FuzzOne;

std::vector<std::string> ValidFiles() {
  std::vector<std::string> files = {::moeserve::testing::ValidSafetensors()};
  const fs::path dirs[] = {fs::path(MOESERVE_SOURCE_DIR) / "tests/fuzz/corpus/safetensors_header",
                           ::moeserve::testing::FixturesDir() / "safetensors"};
  for (const fs::path& dir : dirs) {
    for (std::string& file : fuzz::ReadCorpus(dir)) files.push_back(std::move(file));
  }
  return files;
}

TEST(SafetensorsHeaderFuzzReplay, MalformedTable) {
  for (const auto& c : ::moeserve::testing::MalformedSafetensorsCases()) FuzzOne(c.bytes);
}

TEST(SafetensorsHeaderFuzzReplay, CorpusPrefixesAndMutations) {
  const std::vector<std::string> files = ValidFiles();
  ASSERT_GE(files.size(), 6u);
  for (const std::string& file : files) {
    FuzzOne(file);
    for (size_t len = 0; len < file.size(); ++len) FuzzOne(file.substr(0, len));
    // Mutate every byte of the length and header (the data section is opaque to the parser).
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(file[i]);
    const size_t end = std::min<size_t>(file.size(), 8 + header_len);
    for (size_t i = 0; i < end; ++i) {
      for (const char replacement : {'\0', '\xff', '9', '-', '"', '{', '[', ','}) {
        std::string mutated = file;
        mutated[i] = replacement;
        FuzzOne(mutated);
      }
    }
  }
}

}  // namespace
}  // namespace moeserve

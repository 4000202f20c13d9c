#ifndef MOESERVE_TESTS_FUZZ_FUZZ_REPLAY_H_
#define MOESERVE_TESTS_FUZZ_FUZZ_REPLAY_H_

// For the replay tests of the fuzz targets that define LLVMFuzzerTestOneInput (one per binary).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace moeserve::fuzz {

// Runs the target's body on `bytes`, as libFuzzer would.
inline void FuzzOne(const std::string& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// The contents of every file in `dir`.
inline std::vector<std::string> ReadCorpus(const std::filesystem::path& dir) {
  std::vector<std::string> files;
  for (const std::filesystem::directory_entry& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    files.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return files;
}

}  // namespace moeserve::fuzz

#endif  // MOESERVE_TESTS_FUZZ_FUZZ_REPLAY_H_

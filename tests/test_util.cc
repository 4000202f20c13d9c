#include "tests/test_util.h"

#include <cstdlib>
#include <mutex>
#include <random>
#include <vector>

namespace moeserve::testing {

std::filesystem::path TestDataDir() {
  if (const char* env = std::getenv("MOESERVE_TEST_DATA"); env != nullptr && *env != '\0') {
    return env;
  }
  return std::filesystem::path(MOESERVE_SOURCE_DIR) / ".." / "shared" / "data";
}

std::filesystem::path FixturesDir() {
  return std::filesystem::path(MOESERVE_SOURCE_DIR) / "tests" / "fixtures";
}

namespace {
struct TempDirs {
  std::mutex mu;
  std::vector<std::filesystem::path> dirs;
  ~TempDirs() {
    std::error_code ec;
    for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};
TempDirs& AllTempDirs() {
  static TempDirs dirs;  // removed by its destructor at normal exit
  return dirs;
}
}  // namespace

std::filesystem::path MakeTempDir(const std::string& prefix) {
  std::random_device rd;
  const auto base = std::filesystem::temp_directory_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto dir = base / (prefix + "-" + std::to_string(rd()));
    if (std::filesystem::create_directory(dir)) {
      TempDirs& t = AllTempDirs();
      std::lock_guard<std::mutex> lock(t.mu);
      t.dirs.push_back(dir);
      return dir;
    }
  }
  return {};
}

}  // namespace moeserve::testing

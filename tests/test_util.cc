#include "tests/test_util.h"

#include <cstdio>
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

std::filesystem::path FixturesDir() { return std::filesystem::path(MOESERVE_SOURCE_DIR) / "tests" / "fixtures"; }

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

Watchdog::Watchdog(std::chrono::milliseconds limit, std::string what) {
  thread_ = std::thread([this, limit, what = std::move(what)] {
    std::unique_lock<std::mutex> lock(mu_);
    if (done_cv_.wait_for(lock, limit, [this] { return done_; })) return;
    std::fprintf(stderr, "\nWatchdog: %s did not finish within %lld ms; aborting the test\n", what.c_str(),
                 static_cast<long long>(limit.count()));
    std::fflush(stderr);
    std::abort();
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  done_cv_.notify_all();
  thread_.join();
}

}  // namespace moeserve::testing

#ifndef MOESERVE_TESTS_TEST_UTIL_H_
#define MOESERVE_TESTS_TEST_UTIL_H_

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

namespace moeserve::testing {

// Directory of the shared test data: $MOESERVE_TEST_DATA, else ../shared/data beside the source tree.
std::filesystem::path TestDataDir();

// Directory of the committed fixtures: <source>/tests/fixtures.
std::filesystem::path FixturesDir();

// A fresh empty temporary directory, removed when the process exits normally.
std::filesystem::path MakeTempDir(const std::string& prefix);

// Aborts the test process with a message naming `what` when it is still alive `limit` after it
// was made, so that a test waiting on the code under test fails fast and says why instead of
// hanging until CTest's timeout. Leave its scope when the wait is over. Thread-safe.
class Watchdog {
 public:
  Watchdog(std::chrono::milliseconds limit, std::string what);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace moeserve::testing

// Skips the current test with a clear message when the shared test data is absent.
#define MOESERVE_REQUIRE_TEST_DATA(relative_path)                                                                \
  do {                                                                                                           \
    const auto _p = ::moeserve::testing::TestDataDir() / (relative_path);                                        \
    if (!std::filesystem::exists(_p)) {                                                                          \
      GTEST_SKIP() << "test data not found: " << _p << " (set MOESERVE_TEST_DATA to the shared data directory)"; \
    }                                                                                                            \
  } while (0)

#endif  // MOESERVE_TESTS_TEST_UTIL_H_

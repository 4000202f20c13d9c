#ifndef MOESERVE_TESTS_TEST_UTIL_H_
#define MOESERVE_TESTS_TEST_UTIL_H_

#include <filesystem>
#include <string>

namespace moeserve::testing {

// Directory of the shared test data: $MOESERVE_TEST_DATA, else ../shared/data beside the source tree.
std::filesystem::path TestDataDir();

// Directory of the committed fixtures: <source>/tests/fixtures.
std::filesystem::path FixturesDir();

// A fresh empty temporary directory, removed when the process exits normally.
std::filesystem::path MakeTempDir(const std::string& prefix);

}  // namespace moeserve::testing

// Skips the current test with a clear message when the shared test data is absent.
#define MOESERVE_REQUIRE_TEST_DATA(relative_path)                                           \
  do {                                                                                      \
    const auto _p = ::moeserve::testing::TestDataDir() / (relative_path);                   \
    if (!std::filesystem::exists(_p)) {                                                     \
      GTEST_SKIP() << "test data not found: " << _p                                         \
                   << " (set MOESERVE_TEST_DATA to the shared data directory)";             \
    }                                                                                       \
  } while (0)

#endif  // MOESERVE_TESTS_TEST_UTIL_H_

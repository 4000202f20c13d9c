// `moeserve serve` refuses unsafe or meaningless flags before it serves: an empty --api-key (e.g.
// --api-key "$KEY" with KEY unset) once started the server without authentication. Each run is
// bounded by `timeout`, so a server that starts anyway fails the test instead of hanging it.

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/run_command.h"

namespace moeserve {
namespace {

using ::testing::HasSubstr;

// Runs `moeserve serve ARGS` on free ports; a server still running after 60 s is killed (124).
testing::CommandResult RunServe(const std::string& args) {
  return testing::RunCommand(std::string("timeout 60 ") + MOESERVE_BIN +
                             " serve --model " MOESERVE_SOURCE_DIR
                             "/models/default --port 0 "
                             "--http-port 0 --metrics-port -1 " +
                             args + " 2>&1");
}

TEST(ServeFlagsTest, AnEmptyApiKeyIsRefused) {
  for (const char* key : {"\"\"", "\"  \""}) {
    const testing::CommandResult r = RunServe(std::string("--api-key ") + key);
    EXPECT_NE(r.exit_code, 0) << key;
    EXPECT_NE(r.exit_code, 124) << "the server started with --api-key " << key;
    EXPECT_THAT(r.output, HasSubstr("--api-key")) << key;
    EXPECT_THAT(r.output, HasSubstr("must not be empty")) << key;
  }
}

}  // namespace
}  // namespace moeserve

#ifndef MOESERVE_TESTS_CLI_RUN_COMMAND_H_
#define MOESERVE_TESTS_CLI_RUN_COMMAND_H_

// Runs a shell command line to completion for the command-line tests.

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace moeserve::testing {

struct CommandResult {
  int exit_code = -1;  // -1: did not exit normally (a signal) or could not start
  std::string output;  // what the command wrote to stdout (add 2>&1 for stderr)
};

inline CommandResult RunCommand(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace moeserve::testing

#endif  // MOESERVE_TESTS_CLI_RUN_COMMAND_H_

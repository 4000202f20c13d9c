#ifndef MOESERVE_TESTS_FUZZ_STRUCTURED_FUZZ_H_
#define MOESERVE_TESTS_FUZZ_STRUCTURED_FUZZ_H_

// Body of the structured-output compiler fuzz target, shared by the libFuzzer entry point
// (structured_constraint_fuzz_main.cc) and the replay test.

#include <string_view>

namespace moeserve::fuzz {

// The first byte picks the constraint kind (json_schema, regex, grammar, tool_calls, triggered; see
// structured_fuzz_body.cc) and free whitespace, the rest is its text.
// Compilation (with small limits) must either fail with InvalidArgument or succeed; on success, a
// matcher fed bytes taken from the input must give masks that agree with AcceptToken on every
// token of a one-token-per-byte vocabulary, and never an empty mask before termination.
// Aborts with a message when an invariant breaks.
void FuzzConstraintCompiler(std::string_view data);

}  // namespace moeserve::fuzz

#endif  // MOESERVE_TESTS_FUZZ_STRUCTURED_FUZZ_H_

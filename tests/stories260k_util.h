#ifndef MOESERVE_TESTS_STORIES260K_UTIL_H_
#define MOESERVE_TESTS_STORIES260K_UTIL_H_

// llama2.c's stories260K (shared test data) as a Hugging Face model directory, for tests that need
// a trained model with a tokenizer.

#include <string>

namespace moeserve::testing {

// The model converted into a temporary directory (with tokenizer), once per process; empty when
// the shared data is absent. Thread-safe.
std::string Stories260kDir();

// Greedy output of stories260K from BOS alone (the shared data's README).
inline constexpr char kStories260kReferenceStory[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One "
    "day, she saw a big, red ball. She wanted to play with it, but it was too high.";

}  // namespace moeserve::testing

#endif  // MOESERVE_TESTS_STORIES260K_UTIL_H_

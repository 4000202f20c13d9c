// libFuzzer entry point: Tokenizer::Encode on arbitrary bytes (tokenizer: $MOESERVE_FUZZ_TOKENIZER or shared qwen3).
// The body and its invariants are in tokenizer_fuzz_bodies.cc.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/tokenizer_fuzz.h"

// Loads the tokenizer before the first input, so that no input's time limit is charged for it.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  moeserve::fuzz::FuzzTokenizer(MOESERVE_SOURCE_DIR);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  moeserve::fuzz::FuzzTokenizerEncode(moeserve::fuzz::FuzzTokenizer(MOESERVE_SOURCE_DIR), text);
  return 0;
}

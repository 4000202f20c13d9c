// libFuzzer entry point: Tokenizer::FromJson on arbitrary tokenizer.json text.
// The body and its invariants are in tokenizer_fuzz_bodies.cc.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/tokenizer_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  moeserve::fuzz::FuzzTokenizerLoad(text);
  return 0;
}

// libFuzzer entry point: the structured-output constraint compiler and matcher on arbitrary
// JSON Schema, regex and GBNF text. The body and its invariants are in structured_fuzz_body.cc.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/structured_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moeserve::fuzz::FuzzConstraintCompiler(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

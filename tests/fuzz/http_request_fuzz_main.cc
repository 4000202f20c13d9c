// libFuzzer entry point: an HTTP/1.1 request read as a connection reads it, and an OpenAI body
// converted into serving requests and prepared. The body and its promises are in
// http_request_fuzz_body.cc.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/http_request_fuzz.h"

// Loads the tokenizer and builds the constraint vocabulary before the first input, so that no
// input's time limit is charged for them.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  moeserve::fuzz::RequestFuzzEnv::Get(MOESERVE_SOURCE_DIR);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moeserve::fuzz::FuzzHttpRequest(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

// Usage: moeserve_convert_llama2c_vocab TOK_BIN OUT_DIR
// Writes OUT_DIR/tokenizer.json and OUT_DIR/tokenizer_config.json (Hugging Face format).
#include <cstdio>
#include <filesystem>

#include "server/tokenizer/llama2c_vocab.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s TOK_BIN OUT_DIR\n", argv[0]);
    return 2;
  }
  auto converted = moeserve::ConvertLlama2cVocab(argv[1]);
  if (!converted.ok()) {
    std::fprintf(stderr, "%s\n", converted.status().ToString().c_str());
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(argv[2], ec);
  const absl::Status st = moeserve::WriteConvertedTokenizer(*converted, argv[2]);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}

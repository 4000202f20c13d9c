// moeserve_tokenizer_bench DIR TEXTS_JSON [REPEATS]: encodes every string of TEXTS_JSON (a JSON array
// of strings) with the tokenizer in DIR, single-threaded, REPEATS times (default 5), and prints
// one JSON line: {"texts", "bytes", "tokens", "id_sum", "best_s", "median_s"}. Used by
// tools/tokenizer/bench_tokenizer.py to compare with the Rust `tokenizers` library.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "server/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_DIR TEXTS_JSON [REPEATS]\n", argv[0]);
    return 2;
  }
  auto tokenizer = moeserve::Tokenizer::FromDirectory(argv[1]);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  std::ifstream in(argv[2], std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::vector<std::string> texts = nlohmann::json::parse(ss.str()).get<std::vector<std::string>>();
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 5;
  size_t bytes = 0;
  for (const std::string& t : texts) bytes += t.size();
  std::vector<double> times;
  size_t tokens = 0;
  long long id_sum = 0;
  for (int r = 0; r < repeats; ++r) {
    tokens = 0;
    id_sum = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const std::string& t : texts) {
      auto ids = (*tokenizer)->Encode(t, /*add_special_tokens=*/false);
      if (!ids.ok()) {
        std::fprintf(stderr, "encode failed: %s\n", std::string(ids.status().message()).c_str());
        return 1;
      }
      tokens += ids->size();
      for (const int32_t id : *ids) id_sum += id;
    }
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  std::printf(
      "{\"texts\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"id_sum\": %lld, \"best_s\": %.6f, "
      "\"median_s\": %.6f}\n",
      texts.size(), bytes, tokens, id_sum, times.front(), times[times.size() / 2]);
  return 0;
}

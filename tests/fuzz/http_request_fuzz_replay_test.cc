// Runs the body of the HTTP request fuzz target without libFuzzer over its seed corpus
// (tests/fuzz/corpus/http_request/: raw HTTP/1.1 requests for every OpenAI route and parameter,
// accepted and refused, and for the transport's limits and framings), and prefixes and one-byte
// mutations of each, so that CI checks the target's promises on any compiler. A broken promise
// aborts the test with the target's message. Also checks ReadHttpRequest, which the fuzz target
// reads with, on seeds whose outcome is known.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "server/api/http/http_request_reader.h"
#include "tests/fuzz/http_request_fuzz.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

std::map<std::string, std::string> Seeds() {
  std::map<std::string, std::string> seeds;
  for (const fs::directory_entry& e :
       fs::directory_iterator(fs::path(MOESERVE_SOURCE_DIR) / "tests/fuzz/corpus/http_request")) {
    std::ifstream in(e.path(), std::ios::binary);
    seeds[e.path().filename().string()] =
        std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return seeds;
}

class HttpRequestFuzzReplay : public ::testing::Test {
 protected:
  void SetUp() override {
    MOESERVE_REQUIRE_TEST_DATA("tokenizers/qwen3/tokenizer.json");
    setenv("MOESERVE_FUZZ_TOKENIZER", (testing::TestDataDir() / "tokenizers/qwen3").c_str(), 1);
  }
};

TEST_F(HttpRequestFuzzReplay, ReaderOutcomesOfTransportSeeds) {
  const std::map<std::string, std::string> seeds = Seeds();
  api::HttpServerOptions options;
  options.max_header_bytes = 2048;
  options.max_body_bytes = 16384;
  auto read = [&](const std::string& name) {
    EXPECT_TRUE(seeds.contains(name)) << name;
    return api::http_internal::ReadHttpRequest(seeds.at(name), options);
  };
  auto error_status = [&](const std::string& name) {
    const api::http_internal::HttpReadResult r = read(name);
    return r.error.has_value() ? r.error->first : 0;
  };
  EXPECT_EQ(error_status("transport_body_limit.http"), 413);
  EXPECT_EQ(error_status("transport_header_limit.http"), 431);
  EXPECT_EQ(error_status("transport_malformed.http"), 400);
  const api::http_internal::HttpReadResult truncated = read("transport_truncated.http");
  EXPECT_FALSE(truncated.request.has_value());
  EXPECT_FALSE(truncated.error.has_value());

  const api::http_internal::HttpReadResult chunked = read("transport_chunked.http");
  ASSERT_TRUE(chunked.request.has_value());
  EXPECT_EQ(chunked.request->body, "{\"prompt\": \"hi\", \"n\": 1}");
  const api::http_internal::HttpReadResult query = read("transport_expect_query.http");
  ASSERT_TRUE(query.request.has_value());
  EXPECT_EQ(query.request->path, "/v1/completions");
  EXPECT_EQ(query.request->target, "/v1/completions?stream=false");
  ASSERT_NE(query.request->Header("host"), nullptr);
  EXPECT_EQ(*query.request->Header("x-request-id"), "abc");
  EXPECT_TRUE(query.keep_alive);
  const std::string& pipelined_bytes = seeds.at("transport_pipelined.http");
  const api::http_internal::HttpReadResult first = read("transport_pipelined.http");
  ASSERT_TRUE(first.request.has_value());
  EXPECT_EQ(first.request->path, "/health");
  const api::http_internal::HttpReadResult second =
      api::http_internal::ReadHttpRequest(std::string_view(pipelined_bytes).substr(first.consumed), options);
  ASSERT_TRUE(second.request.has_value());
  EXPECT_EQ(second.request->method, "POST");
  EXPECT_EQ(second.request->body, "{\"prompt\": \"x\"}");
}

// Each seed ends as its name says: chat_*, completions_*, tokenize_* accepted, err_* refused,
// the transport's limits and malformed input a read error, the rest as listed.
TEST_F(HttpRequestFuzzReplay, SeedsEndAsNamed) {
  using fuzz::RequestOutcome;
  const std::map<std::string, RequestOutcome> special = {
      {"detokenize.http", RequestOutcome::kIgnored},  // a route the target does not follow
      {"transport_body_limit.http", RequestOutcome::kReadError},
      {"transport_chunked.http", RequestOutcome::kAccepted},
      {"transport_expect_query.http", RequestOutcome::kAccepted},
      {"transport_header_limit.http", RequestOutcome::kReadError},
      {"transport_http10.http", RequestOutcome::kIgnored},
      {"transport_malformed.http", RequestOutcome::kReadError},
      {"transport_pipelined.http", RequestOutcome::kIgnored},  // GET /health first
      {"transport_truncated.http", RequestOutcome::kIgnored},
  };
  for (const auto& [name, seed] : Seeds()) {
    SCOPED_TRACE(name);
    RequestOutcome expected = RequestOutcome::kAccepted;
    if (name.starts_with("err_")) expected = RequestOutcome::kRefused;
    if (auto it = special.find(name); it != special.end()) expected = it->second;
    EXPECT_EQ(fuzz::FuzzHttpRequest(seed), expected);
  }
}

TEST_F(HttpRequestFuzzReplay, CorpusPrefixesAndMutations) {
  const std::map<std::string, std::string> seeds = Seeds();
  ASSERT_GE(seeds.size(), 30u);
  for (const auto& [name, seed] : seeds) {
    SCOPED_TRACE(name);
    fuzz::FuzzHttpRequest(seed);
    const size_t stride = std::max<size_t>(1, seed.size() / 24);
    for (size_t len = 0; len < seed.size(); len += stride) fuzz::FuzzHttpRequest(seed.substr(0, len));
    for (size_t i = 0; i < seed.size(); i += stride) {
      for (const char c : {'\0', '\n', '\xff', '9', '-', '"', '{', '[', ':', ' '}) {
        std::string mutated = seed;
        mutated[i] = c;
        fuzz::FuzzHttpRequest(mutated);
      }
    }
  }
}

}  // namespace
}  // namespace moeserve

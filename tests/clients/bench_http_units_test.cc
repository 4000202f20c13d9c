// moeserve-bench's HTTP pieces alone: the server-sent-events splitter, OpenAI chunk parsing, the
// request body, base URLs and the HTTP-to-status-name mapping.
#include <string>
#include <vector>

#include "clients/bench/http_client.h"
#include "clients/bench/openai_client.h"
#include "clients/bench/sse.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moeserve::bench {
namespace {

std::vector<std::string> Split(const std::string& stream, size_t piece) {
  SseParser parser;
  std::vector<std::string> events;
  for (size_t i = 0; i < stream.size(); i += piece) {
    parser.Feed(std::string_view(stream).substr(i, piece), [&](std::string_view data) { events.emplace_back(data); });
  }
  return events;
}

TEST(SseParserTest, EventsWhateverTheReadsAndLineEnds) {
  const std::string stream =
      ": keep-alive\n\n"
      "data: {\"a\":1}\n\n"
      "event: message\r\nid: 7\r\ndata:{\"b\":2}\r\n\r\n"
      "data: line one\rdata: line two\r\r"
      "retry: 100\n\n"
      "data: [DONE]\n\n"
      "data: unterminated";
  const std::vector<std::string> want = {"{\"a\":1}", "{\"b\":2}", "line one\nline two", "[DONE]"};
  for (size_t piece = 1; piece <= stream.size(); ++piece) {
    EXPECT_EQ(Split(stream, piece), want) << "reads of " << piece << " bytes";
  }
}

TEST(OpenAiChunkTest, Completions) {
  auto c = ParseOpenAiChunk(OpenAiApi::kCompletions, R"({"choices":[{"index":0,"text":" the","finish_reason":null}]})");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->carries_tokens);
  EXPECT_EQ(c->finish_reason, "");
  c = ParseOpenAiChunk(OpenAiApi::kCompletions, R"({"choices":[{"index":0,"text":"","finish_reason":"length"}]})");
  EXPECT_FALSE(c->carries_tokens);
  EXPECT_EQ(c->finish_reason, "LENGTH");
  c = ParseOpenAiChunk(OpenAiApi::kCompletions,
                       R"({"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,
                           "prompt_tokens_details":{"cached_tokens":8}}})");
  EXPECT_TRUE(c->has_usage);
  EXPECT_EQ(c->prompt_tokens, 9);
  EXPECT_EQ(c->completion_tokens, 4);
  EXPECT_EQ(c->cached_tokens, 8);
  c = ParseOpenAiChunk(OpenAiApi::kCompletions, R"({"choices":[],"usage":null})");
  EXPECT_FALSE(c->has_usage);
  EXPECT_FALSE(ParseOpenAiChunk(OpenAiApi::kCompletions, "not json").ok());
  EXPECT_FALSE(ParseOpenAiChunk(OpenAiApi::kCompletions, "[1]").ok());
}

TEST(OpenAiChunkTest, ChatDeltas) {
  auto carries = [](const char* chunk) { return ParseOpenAiChunk(OpenAiApi::kChat, chunk).value().carries_tokens; };
  EXPECT_FALSE(carries(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})"));
  EXPECT_TRUE(carries(R"({"choices":[{"index":0,"delta":{"content":"Hi"}}]})"));
  EXPECT_TRUE(carries(R"({"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]})"));
  EXPECT_TRUE(carries(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]})"));
  EXPECT_FALSE(carries(R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})"));
  // The completions API's field means nothing to chat.
  EXPECT_FALSE(carries(R"({"choices":[{"index":0,"text":"x"}]})"));
}

TEST(OpenAiChunkTest, ErrorEvents) {
  auto c = ParseOpenAiChunk(OpenAiApi::kChat, R"({"error":{"message":"queue full","type":"x","code":429}})");
  EXPECT_EQ(c->error_status, "RESOURCE_EXHAUSTED");
  EXPECT_EQ(c->error_message, "queue full");
  c = ParseOpenAiChunk(OpenAiApi::kChat, R"({"error":"boom"})");
  EXPECT_EQ(c->error_status, "INTERNAL");
  EXPECT_EQ(c->error_message, "boom");
}

TEST(OpenAiRequestTest, Bodies) {
  BenchPrompt ids;
  ids.token_ids = {5, 6};
  ids.output_tokens = 7;
  RequestSpec spec;
  spec.temperature = 0.5f;
  spec.ignore_eos = false;
  auto body = nlohmann::json::parse(MakeOpenAiRequestBody(OpenAiApi::kCompletions, "m", ids, spec));
  EXPECT_EQ(body, nlohmann::json::parse(R"({"model":"m","prompt":[5,6],"max_tokens":7,
      "temperature":0.5,"stream":true,"stream_options":{"include_usage":true}})"));
  BenchPrompt text;
  text.text = "hi";
  text.output_tokens = 3;
  spec.ignore_eos = true;
  spec.cache_salt = "s";
  body = nlohmann::json::parse(MakeOpenAiRequestBody(OpenAiApi::kChat, "m", text, spec));
  EXPECT_EQ(body["messages"], nlohmann::json::parse(R"([{"role":"user","content":"hi"}])"));
  EXPECT_EQ(body["ignore_eos"], true);
  EXPECT_EQ(body["cache_salt"], "s");
  EXPECT_FALSE(body.contains("prompt"));
}

TEST(HttpUrlTest, Parses) {
  auto u = ParseHttpUrl("http://127.0.0.1:8000/v1/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8000");
  EXPECT_EQ(u->path, "/v1");
  u = ParseHttpUrl("http://localhost");
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->path, "");
  u = ParseHttpUrl("http://[::1]:9000/api/v1");
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "9000");
  EXPECT_EQ(u->path, "/api/v1");
  EXPECT_FALSE(ParseHttpUrl("https://x/v1").ok());
  EXPECT_FALSE(ParseHttpUrl("127.0.0.1:8000").ok());
  EXPECT_FALSE(ParseHttpUrl("http://x:port/").ok());
  EXPECT_FALSE(ParseHttpUrl("http://:80/").ok());
}

TEST(HttpStatusTest, NamesLineUpWithGrpc) {
  EXPECT_EQ(StatusNameForHttp(200), "OK");
  EXPECT_EQ(StatusNameForHttp(400), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusNameForHttp(401), "UNAUTHENTICATED");
  EXPECT_EQ(StatusNameForHttp(404), "NOT_FOUND");
  EXPECT_EQ(StatusNameForHttp(413), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusNameForHttp(429), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusNameForHttp(503), "UNAVAILABLE");
  EXPECT_EQ(StatusNameForHttp(500), "INTERNAL");
  EXPECT_EQ(StatusNameForHttp(418), "UNKNOWN");
}

}  // namespace
}  // namespace moeserve::bench

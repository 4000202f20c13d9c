// The HTTP server of `moeserve serve` over a real engine, at the byte level: /health and /metrics
// on the API port, OpenAI-shaped errors, keep-alive, every limit with its status (413, 431, 408),
// idle connections closed, API keys, TLS, and probes that stay fast with 100 slow or silent
// connections open.

#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/api/loading_responder.h"
#include "tests/api/api_test_util.h"
#include "tests/http/http_test_client.h"

namespace moeserve::testing {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<TestServer> StartServer(TestServerOptions options = {}) {
  options.model_dir = LlamaFixtureDir();
  auto server = TestServer::Start(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

// The OpenAI error object of a response body.
nlohmann::json ErrorOf(const RawResponse& r) {
  const nlohmann::json body = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(body.is_object() && body.contains("error")) << r.body;
  if (!body.is_object() || !body.contains("error")) return nlohmann::json::object();
  const nlohmann::json& e = body["error"];
  for (const char* key : {"message", "type", "param", "code"}) EXPECT_TRUE(e.contains(key)) << key;
  return e;
}

TEST(HttpServerTest, HealthAndMetricsOnTheApiPort) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const int port = server->http_port();
  ASSERT_GT(port, 0);
  auto health = HttpRequestOnce(port, "GET", "/health");
  ASSERT_TRUE(health.has_value());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "SERVING\n");
  auto head = HttpRequestOnce(port, "HEAD", "/health");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers["content-length"], "8");
  auto metrics = HttpRequestOnce(port, "GET", "/metrics");
  ASSERT_TRUE(metrics.has_value());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->headers["content-type"], HasSubstr("text/plain; version=0.0.4"));
  for (const char* series : {"moeserve_requests_running ", "moeserve_kv_cache_blocks_used ",
                             "# TYPE moeserve_e2e_request_latency_seconds histogram"}) {
    EXPECT_THAT(metrics->body, HasSubstr(series));
  }
  auto post = HttpRequestOnce(port, "POST", "/health", "{}");
  ASSERT_TRUE(post.has_value());
  EXPECT_EQ(post->status, 405);
}

TEST(HttpServerTest, UnknownRoutesGetOpenAiShaped404) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto r = HttpRequestOnce(server->http_port(), "GET", "/v1/nope");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->headers["content-type"], "application/json");
  const nlohmann::json e = ErrorOf(*r);
  EXPECT_THAT(e.value("message", ""), HasSubstr("/v1/nope"));
  EXPECT_EQ(e.value("type", ""), "not_found_error");
  // The operator port knows only /health and /metrics.
  auto op = HttpRequestOnce(server->metrics_port(), "GET", "/v1/models");
  ASSERT_TRUE(op.has_value());
  EXPECT_EQ(op->status, 404);
}

TEST(HttpServerTest, KeepAliveServesRequestsInTurnAndPipelined) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  RawHttpClient client(server->http_port());
  ASSERT_TRUE(client.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client.Send(RawHttpClient::Request("GET", "/health")));
    auto r = client.Read();
    ASSERT_TRUE(r.has_value()) << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->headers["connection"], "keep-alive");
  }
  // Two requests in one write: two responses in order.
  ASSERT_TRUE(client.Send(RawHttpClient::Request("GET", "/health") + RawHttpClient::Request("GET", "/nope")));
  auto first = client.Read();
  auto second = client.Read();
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 404);
  // Connection: close is honoured.
  ASSERT_TRUE(client.Send(RawHttpClient::Request("GET", "/health", "", "Connection: close\r\n")));
  auto last = client.Read();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->headers["connection"], "close");
  EXPECT_TRUE(client.WaitForClose(absl::Seconds(5)));
}

TEST(HttpServerTest, BodyOverTheLimitIs413AndTheServerStaysUp) {
  TestServerOptions options;
  options.server.max_message_bytes = 1000;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  const std::string big(5000, 'x');
  auto r = HttpRequestOnce(server->http_port(), "POST", "/v1/completions", big);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
  EXPECT_THAT(ErrorOf(*r).value("message", ""), HasSubstr("1000 bytes (--max-message-bytes)"));
  // Declared too large, not even sent: refused from the header alone.
  RawHttpClient client(server->http_port());
  ASSERT_TRUE(client.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"));
  auto early = client.Read();
  ASSERT_TRUE(early.has_value());
  EXPECT_EQ(early->status, 413);
  EXPECT_EQ(HttpRequestOnce(server->http_port(), "GET", "/health")->status, 200);
}

TEST(HttpServerTest, HeaderOverTheLimitIs431) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto r = HttpRequestOnce(server->http_port(), "GET", "/health", "",
                           absl::StrCat("X-Big: ", std::string(40000, 'a'), "\r\n"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 431);
  auto bad = HttpRequestOnce(server->http_port(), "GET /health HTTP/1.1", "");
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400);
}

TEST(HttpServerTest, SlowHeaderIs408AndIdleConnectionsAreClosed) {
  TestServerOptions options;
  options.server.http_header_timeout = absl::Milliseconds(300);
  options.server.http_idle_timeout = absl::Milliseconds(500);
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  const int port = server->http_port();
  {  // Half a header, then silence.
    RawHttpClient client(port);
    ASSERT_TRUE(client.Send("GET /health HTTP/1.1\r\nHo"));
    auto r = client.Read(absl::Seconds(5));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 408);
    EXPECT_TRUE(client.WaitForClose(absl::Seconds(5)));
  }
  {  // A body that never comes.
    RawHttpClient client(port);
    ASSERT_TRUE(client.Send("POST /v1/completions HTTP/1.1\r\nContent-Length: 10\r\n\r\n{"));
    auto r = client.Read(absl::Seconds(5));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 408);
  }
  {  // Connected, never a byte: closed after the header timeout.
    RawHttpClient client(port);
    const absl::Time start = absl::Now();
    EXPECT_TRUE(client.WaitForClose(absl::Seconds(5)));
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  }
  {  // Kept alive after a response, then idle: closed after the idle timeout.
    RawHttpClient client(port);
    ASSERT_TRUE(client.Send(RawHttpClient::Request("GET", "/health")));
    ASSERT_TRUE(client.Read().has_value());
    const absl::Time start = absl::Now();
    EXPECT_TRUE(client.WaitForClose(absl::Seconds(5)));
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(400));
  }
  EXPECT_EQ(HttpRequestOnce(port, "GET", "/health")->status, 200);
}

TEST(HttpServerTest, ApiKeysGuardTheApiButNotTheProbes) {
  TestServerOptions options;
  options.server.api_keys = serving::ApiKeys({"s3cret"});
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  const int port = server->http_port();
  auto none = HttpRequestOnce(port, "GET", "/v1/nope");
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(ErrorOf(*none).value("code", ""), "invalid_api_key");
  auto wrong = HttpRequestOnce(port, "GET", "/v1/nope", "", "Authorization: Bearer nope\r\n");
  EXPECT_EQ(wrong->status, 401);
  auto right = HttpRequestOnce(port, "GET", "/v1/nope", "", "Authorization: Bearer s3cret\r\n");
  EXPECT_EQ(right->status, 404);
  EXPECT_EQ(HttpRequestOnce(port, "GET", "/health")->status, 200);
  EXPECT_EQ(HttpRequestOnce(port, "GET", "/metrics")->status, 200);
}

// While the model loads, the HTTP port already says "not ready": 503 for probes and API calls.
TEST(HttpServerTest, TheLoadingResponderAnswers503) {
  int port = 0;  // a fixed port, as `moeserve serve --http-port` holds one: try a few
  for (int attempt = 0; attempt < 5 && port == 0; ++attempt) {
    const int candidate = FreePort();
    api::ApiServerOptions options;
    options.http_port = candidate;
    auto loading = api::LoadingResponder::Start(options);
    if (!loading.ok()) continue;
    port = candidate;
    auto health = HttpRequestOnce(port, "GET", "/health");
    ASSERT_TRUE(health.has_value());
    EXPECT_EQ(health->status, 503);
    EXPECT_EQ(health->body, "LOADING\n");
    auto api = HttpRequestOnce(port, "GET", "/v1/models");
    ASSERT_TRUE(api.has_value());
    EXPECT_EQ(api->status, 503);
    EXPECT_THAT(ErrorOf(*api).value("message", ""), HasSubstr("loading"));
    (*loading)->Stop();
    EXPECT_FALSE(HttpRequestOnce(port, "GET", "/health").has_value());  // the port is free again
  }
  EXPECT_NE(port, 0);
}

// Issue 18: ten silent connections used to hold the single-threaded /health endpoint for 20 s,
// and one client sending a byte every 1.5 s held it for good. With 100 slow or silent connections
// open (on both HTTP ports), every probe still answers within a second.
TEST(HttpServerTest, ProbesAnswerWithinASecondBeside100SlowConnections) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawHttpClient>> slow;
  for (int i = 0; i < 100; ++i) {
    const int port = i % 2 == 0 ? server->http_port() : server->metrics_port();
    auto c = std::make_unique<RawHttpClient>(port);
    ASSERT_TRUE(c->connected());
    if (i % 4 == 0) ASSERT_TRUE(c->Send("GET /health HTTP/1.1\r\n"));  // a header begun
    if (i % 4 == 1) ASSERT_TRUE(c->Send("POST /v1/completions HTTP/1.1\r\nContent-Length: 99\r\n\r\n{"));
    slow.push_back(std::move(c));
  }
  std::atomic<bool> stop{false};
  std::thread trickle([&] {  // a byte at a time on a quarter of them
    int round = 0;
    while (!stop.load()) {
      for (size_t i = 2; i < slow.size(); i += 4) slow[i]->Send(round % 2 == 0 ? "G" : "E");
      ++round;
      absl::SleepFor(absl::Milliseconds(200));
    }
  });
  absl::Duration worst;
  for (int i = 0; i < 20; ++i) {
    for (int port : {server->http_port(), server->metrics_port()}) {
      const absl::Time start = absl::Now();
      auto r = HttpRequestOnce(port, "GET", "/health");
      const absl::Duration took = absl::Now() - start;
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(r->status, 200);
      worst = std::max(worst, took);
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  stop.store(true);
  trickle.join();
  EXPECT_LT(worst, absl::Seconds(1)) << "slowest probe: " << worst;
}

}  // namespace
}  // namespace moeserve::testing

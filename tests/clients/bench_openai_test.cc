// moeserve-bench's OpenAI backends against the in-process fake OpenAI server: the same Runner and
// the same measurements as over gRPC (TTFT/ITL against the injected delays and the server's write
// times, token counts from usage), both APIs, errors mapped to status names, deadlines, cancels,
// API keys, kept-alive connections, hundreds of streams, and the two protocols measuring one
// schedule alike. Bounds follow bench_runner_test: set where a measurement bug lands, never at
// what a quiet machine achieves.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "clients/bench/grpc_client.h"
#include "clients/bench/metrics.h"
#include "clients/bench/openai_client.h"
#include "clients/bench/runner.h"
#include "clients/common/channel.h"
#include "gtest/gtest.h"
#include "tests/clients/bench_fake_server.h"
#include "tests/clients/bench_test_util.h"
#include "tests/clients/openai_fake_server.h"

namespace moeserve::bench {
namespace {

using testing::FakeHttpBehavior;
using testing::FakeOpenAiServer;
using json = nlohmann::json;

std::unique_ptr<OpenAiStreamClient> Client(const FakeOpenAiServer& server, OpenAiApi api, std::string api_key = "") {
  auto client = OpenAiStreamClient::Create(server.base_url(), {api, "", std::move(api_key)});
  EXPECT_TRUE(client.ok()) << client.status();
  return *std::move(client);
}

std::unique_ptr<StreamClient> Completions(const FakeOpenAiServer& server) {
  auto client = Client(server, OpenAiApi::kCompletions);
  absl::StatusOr<std::string> model = client->FirstModelId();
  EXPECT_TRUE(model.ok()) << model.status();
  client->set_model(*model);
  return client;
}

std::vector<BenchPrompt> Prompts(std::vector<int> kinds, int output_tokens) {
  return testing::KindPrompts(kinds, output_tokens);
}

std::vector<BenchPrompt> TextPrompts(int n, int output_tokens) {
  std::vector<BenchPrompt> out(n);
  for (BenchPrompt& p : out) {
    p.text = "Tell me a story.";
    p.output_tokens = output_tokens;
  }
  return out;
}

int Kind(const json& body) {
  return body.contains("prompt") && body["prompt"].is_array() ? body["prompt"][0].get<int>() : 0;
}

double Since(std::chrono::steady_clock::time_point t, std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(t - t0).count();
}

TEST(BenchOpenAiTest, CompletionsMeasuredLikeGrpc) {
  FakeOpenAiServer server([](const json&) { return FakeHttpBehavior{.ttft_s = 0.060, .itl_s = 0.015}; });
  Runner runner(Completions(server));
  RunResult result = runner.Run(Prompts({0}, 12), {.num_requests = 16, .warmup = 16});
  ASSERT_EQ(result.records.size(), 16u);
  for (const RequestRecord& r : result.records) {
    ASSERT_TRUE(r.ok()) << r.status << " " << r.error;
    EXPECT_EQ(r.output_tokens, 12);
    EXPECT_EQ(r.input_tokens, 4);
    EXPECT_EQ(r.cached_tokens, 2);
    EXPECT_EQ(r.finish_reason, "LENGTH");
    EXPECT_GE(r.ttft_s, 0.060 - 0.001);
    const std::string id = "bench-" + std::to_string(r.index);
    std::vector<std::chrono::steady_clock::time_point> writes = server.WriteTimes(id);
    ASSERT_EQ(writes.size(), 12u);
    const double first_received = r.sent_s + r.ttft_s;
    EXPECT_GE(first_received, Since(writes[0], result.start));
    EXPECT_LT(first_received - Since(writes[0], result.start), 0.015);
    ASSERT_EQ(r.itls_s.size(), 11u);
    const double written_tpot = std::chrono::duration<double>(writes.back() - writes.front()).count() / 11;
    EXPECT_NEAR(r.tpot_s(), written_tpot, 0.003);
    // What was sent: token ids, the length, streaming with usage, the model from GET /models.
    const json body = server.Body(id);
    EXPECT_EQ(body["model"], "fake");
    EXPECT_EQ(body["prompt"], json({0, 1, 2, 3}));
    EXPECT_EQ(body["max_tokens"], 12);
    EXPECT_EQ(body["stream"], true);
    EXPECT_EQ(body["stream_options"]["include_usage"], true);
    EXPECT_EQ(body["ignore_eos"], true);
    EXPECT_FALSE(body.contains("cache_salt"));
  }
  Summary s = Summarize(result.records, result.duration_s, Slo{});
  EXPECT_NEAR(s.itl_ms.median, 15, 5);
  EXPECT_EQ(s.max_in_flight, 16);
  EXPECT_EQ(s.output_tokens, 16 * 12);
}

TEST(BenchOpenAiTest, ChatCountsContentChunksNotTheRoleChunk) {
  FakeOpenAiServer server([](const json&) { return FakeHttpBehavior{.ttft_s = 0.050, .itl_s = 0.010}; });
  auto client = Client(server, OpenAiApi::kChat);
  client->set_model("fake");
  Runner runner(std::move(client));
  RunResult result = runner.Run(TextPrompts(4, 8), {.num_requests = 4});
  for (const RequestRecord& r : result.records) {
    ASSERT_TRUE(r.ok()) << r.status << " " << r.error;
    // The role chunk goes out at once; the first content 50 ms later is the first token.
    EXPECT_GE(r.ttft_s, 0.050 - 0.001);
    EXPECT_EQ(r.itls_s.size(), 7u);
    EXPECT_EQ(r.output_tokens, 8);
    const json body = server.Body("bench-" + std::to_string(r.index));
    EXPECT_EQ(body["messages"], json::parse(R"([{"role": "user", "content": "Tell me a story."}])"));
  }
  // Token-id prompts cannot go to the chat API.
  auto chat = Client(server, OpenAiApi::kChat);
  chat->set_model("fake");
  Runner ids(std::move(chat));
  result = ids.Run(Prompts({0}, 4), {.num_requests = 1});
  EXPECT_EQ(result.records[0].status, "INVALID_ARGUMENT");
}

TEST(BenchOpenAiTest, ChunksWithSeveralTokensCountByUsage) {
  FakeOpenAiServer server(
      [](const json&) { return FakeHttpBehavior{.ttft_s = 0.020, .itl_s = 0.020, .tokens_per_chunk = 3}; });
  Runner runner(Completions(server));
  RunResult result = runner.Run(Prompts({0}, 12), {.num_requests = 2});
  for (const RequestRecord& r : result.records) {
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.output_tokens, 12);  // usage.completion_tokens
    EXPECT_EQ(r.itls_s.size(), 3u);  // 4 chunks: a chunk is one gap, as a multi-token gRPC response
    EXPECT_NEAR(r.tpot_s(), (r.e2e_s - r.ttft_s) / 11, 1e-12);
  }
}

TEST(BenchOpenAiTest, FailuresTimeoutsAndCancelsAreCounted) {
  // 0: fine; 1: error event after 2 chunks; 2: HTTP 400; 3: hangs; 4: HTTP 429.
  FakeOpenAiServer server([](const json& body) {
    switch (Kind(body)) {
      case 0: return FakeHttpBehavior{.ttft_s = 0.005, .itl_s = 0.002};
      case 1: return FakeHttpBehavior{.fail_after_chunks = 2};
      case 2: return FakeHttpBehavior{.http_status = 400};
      case 4: return FakeHttpBehavior{.http_status = 429};
      default: return FakeHttpBehavior{.hang = true};
    }
  });
  Runner runner(Completions(server));
  RunResult result = runner.Run(Prompts({0, 1, 2, 3, 0, 4, 3, 0}, 4), {.num_requests = 8, .request_timeout_s = 0.3});
  ASSERT_EQ(result.records.size(), 8u);
  Summary s = Summarize(result.records, result.duration_s, Slo{});
  EXPECT_EQ(s.completed, 3);
  EXPECT_EQ(s.errors["INTERNAL"], 1);  // the error event's code 500
  EXPECT_EQ(s.errors["INVALID_ARGUMENT"], 1);
  EXPECT_EQ(s.errors["RESOURCE_EXHAUSTED"], 1);
  EXPECT_EQ(s.errors["DEADLINE_EXCEEDED"], 2);
  EXPECT_EQ(result.records[1].output_tokens, 2);  // what arrived before the failure is kept
  EXPECT_NE(result.records[2].error.find("HTTP 400: injected failure"), std::string::npos) << result.records[2].error;
  EXPECT_GE(result.records[3].e2e_s, 0.3 - 0.005);
  EXPECT_LT(result.records[3].e2e_s, 0.3 + 1.0);

  result = runner.Run(Prompts({0, 3, 3}, 4), {.num_requests = 3, .drain_timeout_s = 0.2});
  s = Summarize(result.records, result.duration_s, Slo{});
  EXPECT_EQ(s.completed, 1);
  EXPECT_EQ(s.errors["CANCELLED"], 2);

  const int requests_before_stop = server.requests();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    runner.Stop();
  });
  result = runner.Run(Prompts({3}, 4), {.request_rate = 20, .num_requests = 1000});
  stopper.join();
  s = Summarize(result.records, result.duration_s, Slo{});
  EXPECT_GE(s.sent, 1);
  EXPECT_LT(s.sent, 20);
  EXPECT_EQ(s.errors["CANCELLED"], s.sent);
  // The server sees every abandoned stream go: 2 timed out, 2 drained, and each stopped one it
  // received (one cancelled while its request was still being sent never reaches it).
  auto settled = [&] { return server.cancelled() == 4 + server.requests() - requests_before_stop; };
  for (int i = 0; i < 100 && !settled(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(settled()) << server.cancelled() << " streams seen going, " << server.requests() - requests_before_stop
                         << " stopped ones received";
  EXPECT_LE(server.requests() - requests_before_stop, s.sent);
}

TEST(BenchOpenAiTest, ApiKeyIsSentAsBearer) {
  FakeOpenAiServer server([](const json&) { return FakeHttpBehavior{}; }, "sekret");
  auto good = Client(server, OpenAiApi::kCompletions, "sekret");
  ASSERT_EQ(*good->FirstModelId(), "fake");
  good->set_model("fake");
  Runner ok(std::move(good));
  EXPECT_TRUE(ok.Run(Prompts({0}, 2), {.num_requests = 2}).records[1].ok());
  auto bad = Client(server, OpenAiApi::kCompletions, "wrong");
  bad->set_model("fake");
  Runner refused(std::move(bad));
  const RequestRecord r = refused.Run(Prompts({0}, 2), {.num_requests = 1}).records[0];
  EXPECT_EQ(r.status, "UNAUTHENTICATED");
  EXPECT_NE(r.error.find("HTTP 401"), std::string::npos) << r.error;
}

TEST(BenchOpenAiTest, ConnectionsAreKeptAliveAndStaleOnesRetried) {
  FakeOpenAiServer reuse([](const json&) { return FakeHttpBehavior{.itl_s = 0.001}; });
  Runner runner(Completions(reuse));
  RunResult result = runner.Run(Prompts({0}, 3), {.max_concurrency = 2, .num_requests = 20});
  EXPECT_EQ(Summarize(result.records, result.duration_s, Slo{}).completed, 20);
  EXPECT_LE(reuse.connections(), 3);  // two streams at a time (+ the GET /models one, reused)

  // A server that drops each connection after answering, without saying so: the next request
  // finds its kept-alive connection dead before any response and is retried on a fresh one.
  FakeOpenAiServer drop([](const json&) { return FakeHttpBehavior{.drop_after = true}; });
  Runner dropped(Completions(drop));
  result = dropped.Run(Prompts({0}, 3), {.max_concurrency = 1, .num_requests = 10});
  Summary s = Summarize(result.records, result.duration_s, Slo{});
  EXPECT_EQ(s.completed, 10) << (s.errors.empty() ? "" : s.errors.begin()->first);
  EXPECT_GE(drop.connections(), 10);
}

TEST(BenchOpenAiTest, HundredsOfConcurrentStreamsKeepTheirTiming) {
  FakeOpenAiServer server([](const json&) { return FakeHttpBehavior{.ttft_s = 0.100, .itl_s = 0.050}; });
  Runner runner(Completions(server));
  RunResult result =
      runner.Run(Prompts({0}, 20), {.request_rate = 2000, .num_requests = 400, .warmup = 400, .seed = 1});
  Summary s = Summarize(result.records, result.duration_s, Slo{});
  ASSERT_EQ(s.completed, 400) << s.failed;
  EXPECT_EQ(s.max_in_flight, 400);
  EXPECT_EQ(s.output_tokens, 400 * 20);
  EXPECT_GE(s.ttft_ms.min, 99);
  Distribution error =
      testing::GapErrorsMs(result.records, [&](const std::string& id) { return server.WriteTimes(id); });
  EXPECT_LT(error.median, 20.0);
  EXPECT_NEAR(s.itl_ms.median, 50, 10);
  std::printf(
      "400 HTTP streams: |client ITL - server write gap| mean %.3f ms, median %.3f, p99 %.3f; "
      "ITL median %.2f ms (injected 50)\n",
      error.mean, error.median, error.p99, s.itl_ms.median);
}

TEST(BenchOpenAiTest, GrpcAndHttpMeasureOneScheduleAlike) {
  testing::FakeInferenceServer grpc_server(
      [](const v1::GenerateRequest&) { return testing::FakeBehavior{.ttft_s = 0.080, .itl_s = 0.020}; });
  FakeOpenAiServer http_server([](const json&) { return FakeHttpBehavior{.ttft_s = 0.080, .itl_s = 0.020}; });
  clients::ChannelOptions o;
  o.addr = grpc_server.address();
  std::string error;
  Runner over_grpc(std::make_unique<GrpcStreamClient>(
      std::vector<std::shared_ptr<grpc::Channel>>{clients::MakeChannel(o, &error, 0)}, ""));
  Runner over_http(Completions(http_server));
  const RunOptions options{.max_concurrency = 8, .num_requests = 32, .warmup = 8};
  // Both at once, so that both see the same machine load (one after the other, a busy moment of
  // the shared machine during one run alone moved its TTFT median by more than 10 ms).
  Summary g;
  std::thread grpc_run([&] { g = Summarize(over_grpc.Run(Prompts({0}, 10), options).records, 0, Slo{}); });
  Summary h = Summarize(over_http.Run(Prompts({0}, 10), options).records, 0, Slo{});
  grpc_run.join();
  ASSERT_EQ(g.completed, 32);
  ASSERT_EQ(h.completed, 32);
  EXPECT_EQ(g.output_tokens, h.output_tokens);
  EXPECT_EQ(g.input_tokens, h.input_tokens);
  // Same schedule, same figures: a backend that timed the wrong event would be a gap (20 ms) or
  // the TTFT (80 ms) off.
  EXPECT_NEAR(g.ttft_ms.median, h.ttft_ms.median, 10);
  EXPECT_NEAR(g.tpot_ms.median, h.tpot_ms.median, 3);
  EXPECT_NEAR(g.itl_ms.median, h.itl_ms.median, 5);
  std::printf("same schedule: TTFT median gRPC %.2f / HTTP %.2f ms, TPOT %.2f / %.2f ms\n", g.ttft_ms.median,
              h.ttft_ms.median, g.tpot_ms.median, h.tpot_ms.median);
}

}  // namespace
}  // namespace moeserve::bench

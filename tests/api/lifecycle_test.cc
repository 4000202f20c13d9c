// Cancellation, deadlines, many concurrent streams and the graceful drain: every way a call can
// end early aborts its engine request and frees its KV blocks.

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/api_test_util.h"

namespace moeserve::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = moeserve::v1;

void WaitForWaiting(Engine* engine, int n) {
  for (int i = 0; i < 1000 && engine->GetMetrics().num_waiting < n; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::unique_ptr<TestServer> StartServer(bool start_engine, const std::string& model = "") {
  TestServerOptions options;
  options.model_dir = model.empty() ? LlamaFixtureDir() : model;
  options.start_engine = start_engine;
  auto server = TestServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

TEST(LifecycleTest, ClientCancelWhileQueuedAbortsTheEngineRequest) {
  auto server = StartServer(/*start_engine=*/false);
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  grpc::ClientContext context;
  auto reader = stub->Generate(&context, IdsRequest({1, 2, 3}, 10));
  WaitForWaiting(server->engine(), 1);
  ASSERT_EQ(server->engine()->GetMetrics().num_waiting, 1);
  context.TryCancel();
  v1::GenerateResponse response;
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The server learns of the cancel asynchronously; its handler polls every 10 ms.
  absl::SleepFor(absl::Milliseconds(200));
  server->StartEngine();
  const EngineMetrics m = WaitForIdle(server->engine());
  EXPECT_EQ(m.requests_finished_abort, 1);
  EXPECT_EQ(m.generation_tokens, 0);
  EXPECT_EQ(m.kv_blocks_used, 0);
}

TEST(LifecycleTest, DeadlineWhileQueuedIsDeadlineExceededAndAborts) {
  auto server = StartServer(/*start_engine=*/false);
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  StreamResult got = RunGenerate(stub.get(), IdsRequest({1, 2, 3}, 10), "", /*timeout=*/0.3);
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  absl::SleepFor(absl::Milliseconds(200));  // the server's handler notices within 10 ms
  server->StartEngine();
  const EngineMetrics m = WaitForIdle(server->engine());
  EXPECT_EQ(m.requests_finished_abort, 1);
  EXPECT_EQ(m.kv_blocks_used, 0);
}

TEST(LifecycleTest, ClientCancelMidStreamAbortsWithinAStep) {
  const std::string dir = Stories260kDir();
  if (dir.empty()) GTEST_SKIP() << "shared data models/stories260K not found";
  auto server = StartServer(/*start_engine=*/true, dir);
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  grpc::ClientContext context;
  auto reader = stub->Generate(&context, IdsRequest({1}, 500));
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  const EngineMetrics m = WaitForIdle(server->engine());
  EXPECT_EQ(m.requests_finished_abort, 1);
  EXPECT_LT(m.generation_tokens, 500);
  EXPECT_EQ(m.kv_blocks_used, 0);
}

TEST(LifecycleTest, HundredConcurrentStreamsWithAThirdCancelledFreeEveryBlock) {
  auto server = StartServer(/*start_engine=*/true);
  ASSERT_NE(server, nullptr);
  auto channel = server->Channel();
  constexpr int kStreams = 100;
  std::vector<std::thread> threads;
  std::atomic<int> completed{0}, cancelled{0}, failed{0};
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      auto stub = v1::Inference::NewStub(channel);
      std::mt19937 rng(i);
      const bool cancel = i % 3 == 0;
      const int cancel_after = static_cast<int>(rng() % 6);
      std::vector<int32_t> prompt = {1};
      for (int k = 0; k < 3 + i % 7; ++k) prompt.push_back(static_cast<int32_t>(rng() % 250));
      grpc::ClientContext context;
      auto reader = stub->Generate(&context, IdsRequest(prompt, 40));
      v1::GenerateResponse response;
      int read = 0;
      if (cancel && cancel_after == 0) context.TryCancel();
      while (reader->Read(&response)) {
        if (cancel && ++read == cancel_after) context.TryCancel();
      }
      const grpc::Status status = reader->Finish();
      if (status.ok()) {
        ++completed;
      } else if (status.error_code() == grpc::StatusCode::CANCELLED && cancel) {
        ++cancelled;
      } else {
        ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GE(completed.load(), kStreams * 2 / 3);
  EXPECT_EQ(completed + cancelled, kStreams);
  // Streams cancelled before they reached the server never became engine requests.
  const EngineMetrics m = WaitForIdle(server->engine(), completed.load());
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_EQ(m.num_running, 0);
  // A call cancelled after the engine had already produced all 40 tokens (the client reads behind
  // a loaded machine's engine) ends CANCELLED for the client and by length for the engine.
  EXPECT_GE(m.requests_finished_length, completed.load());
  EXPECT_LE(m.requests_finished_length, completed.load() + cancelled.load());
  EXPECT_EQ(m.requests_finished_length + m.requests_finished_abort, m.requests_added);
  EXPECT_GE(m.requests_added, kStreams * 2 / 3);
  EXPECT_THAT(server->server()->MetricsText(), HasSubstr("moeserve_kv_cache_blocks_used 0\n"));
}

TEST(LifecycleTest, DrainRefusesNewCallsAndLetsInFlightStreamsFinish) {
  auto server = StartServer(/*start_engine=*/false);
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  StreamResult in_flight;
  std::thread t([&] { in_flight = RunGenerate(stub.get(), IdsRequest({1, 2, 3}, 8)); });
  WaitForWaiting(server->engine(), 1);
  const int metrics_port = server->metrics_port();
  std::thread drain([&] { server->server()->Shutdown(absl::Seconds(20)); });
  for (int i = 0; i < 500 && server->server()->serving(); ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(HttpGet(metrics_port, "/health"), "503\n\nNOT_SERVING\n");
  auto health = grpc::health::v1::Health::NewStub(server->Channel());
  grpc::ClientContext hc;
  grpc::health::v1::HealthCheckResponse hr;
  ASSERT_TRUE(health->Check(&hc, grpc::health::v1::HealthCheckRequest(), &hr).ok());
  EXPECT_EQ(hr.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  StreamResult refused = RunGenerate(stub.get(), IdsRequest({1, 2}, 2));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("draining"));
  server->StartEngine();
  t.join();
  drain.join();
  EXPECT_TRUE(in_flight.status.ok()) << in_flight.status.error_message();
  EXPECT_EQ(in_flight.token_ids.size(), 8u);
}

TEST(LifecycleTest, DrainTimeoutCancelsWhatIsLeft) {
  auto server = StartServer(/*start_engine=*/false);
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  StreamResult in_flight;
  std::thread t([&] { in_flight = RunGenerate(stub.get(), IdsRequest({1, 2, 3}, 8)); });
  WaitForWaiting(server->engine(), 1);
  // The engine only runs once the drain has given up, so the stream cannot finish in time.
  std::thread starter([&] {
    absl::SleepFor(absl::Milliseconds(600));
    server->StartEngine();
  });
  const absl::Time start = absl::Now();
  server->server()->Shutdown(absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  t.join();
  starter.join();
  EXPECT_EQ(in_flight.status.error_code(), grpc::StatusCode::CANCELLED) << in_flight.status.error_message();
  EXPECT_THAT(in_flight.status.error_message(), HasSubstr("shut down"));
  const EngineMetrics m = WaitForIdle(server->engine());
  EXPECT_EQ(m.requests_finished_abort, 1);
  EXPECT_EQ(m.kv_blocks_used, 0);
}

}  // namespace
}  // namespace moeserve::testing

#ifndef MOESERVE_TESTS_API_API_TEST_UTIL_H_
#define MOESERVE_TESTS_API_API_TEST_UTIL_H_

// An in-process moeserve server for API tests: a real Engine over a fixture model and an
// ApiServer on free loopback ports, plus client helpers.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "moeserve/v1/inference.grpc.pb.h"
#include "server/api/api_server.h"
#include "server/engine/engine.h"
#include "tests/stories260k_util.h"

namespace moeserve::testing {

// The committed llama fixture (ids only: no tokenizer; context 64, vocab 128 or so).
std::string LlamaFixtureDir();

struct TestServerOptions {
  TestServerOptions() {
    server.port = 0;
    server.http_port = 0;
    server.metrics_port = 0;
  }
  std::string model_dir;
  EngineConfig engine;           // model_dir is set from above; num_threads defaults to 2
  api::ApiServerOptions server;  // ports default to 0 (free) here
  bool start_engine = true;      // false: requests queue until engine()->Start()
};

class TestServer {
 public:
  static absl::StatusOr<std::unique_ptr<TestServer>> Start(TestServerOptions options);
  ~TestServer();

  Engine* engine() { return engine_.get(); }
  api::ApiServer* server() { return server_.get(); }
  std::string address() const;
  int metrics_port() const { return server_->metrics_port(); }
  int http_port() const { return server_->http_port(); }

  std::shared_ptr<grpc::Channel> Channel() const;
  std::unique_ptr<moeserve::v1::Inference::Stub> Stub() const;

  // Starts the engine thread if it was not (idempotent).
  void StartEngine();
  // Shuts the API server down (drain) and stops the engine.
  void Stop(absl::Duration drain_timeout = absl::ZeroDuration());

 private:
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<api::ApiServer> server_;
  bool engine_started_ = false;
};

// The result of a whole Generate stream.
struct StreamResult {
  grpc::Status status;
  std::vector<moeserve::v1::GenerateResponse> responses;
  std::vector<int32_t> token_ids;  // concatenated
  std::string text;                // concatenated
};

StreamResult RunGenerate(moeserve::v1::Inference::Stub* stub, const moeserve::v1::GenerateRequest& request,
                         const std::string& api_key = "", double timeout_seconds = 0);

moeserve::v1::GenerateRequest IdsRequest(std::vector<int32_t> ids, int max_tokens, bool ignore_eos = true);

// GET http://127.0.0.1:port/path; returns "STATUS\n\nBODY" (e.g. "200\n\n...") or "" on error.
std::string HttpGet(int port, const std::string& path);

// Requests finished for any reason.
int64_t Finished(const EngineMetrics& m);

// Waits until the engine is idle with every block released and at least `finished` requests
// finished, or ~10 s; returns the last metrics. A client sees a request's last response before
// the engine's step that produced it publishes its metrics and releases its blocks, so a test
// reading metrics after a call ends waits here first.
EngineMetrics WaitForIdle(Engine* engine, int64_t finished = 1);

}  // namespace moeserve::testing

#endif  // MOESERVE_TESTS_API_API_TEST_UTIL_H_

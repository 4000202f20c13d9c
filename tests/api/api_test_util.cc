#include "tests/api/api_test_util.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/http/http_test_client.h"
#include "tests/test_util.h"

namespace moeserve::testing {

std::string LlamaFixtureDir() { return (FixturesDir() / "models" / "llama").string(); }

absl::StatusOr<std::unique_ptr<TestServer>> TestServer::Start(TestServerOptions options) {
  auto s = std::make_unique<TestServer>();
  options.engine.model_dir = options.model_dir;
  if (options.engine.num_threads <= 0) options.engine.num_threads = 2;
  auto engine = Engine::Create(options.engine);
  if (!engine.ok()) return engine.status();
  s->engine_ = std::move(*engine);
  if (options.start_engine) s->StartEngine();
  auto server = api::ApiServer::Start(options.server, s->engine_.get());
  if (!server.ok()) return server.status();
  s->server_ = std::move(*server);
  return s;
}

TestServer::~TestServer() { Stop(); }

void TestServer::StartEngine() {
  if (engine_started_) return;
  engine_started_ = true;
  engine_->Start();
}

void TestServer::Stop(absl::Duration drain_timeout) {
  if (server_ != nullptr) {
    StartEngine();  // so that aborts of queued requests complete
    server_->Shutdown(drain_timeout);
    server_.reset();
  }
  if (engine_ != nullptr) engine_->Stop();
}

std::string TestServer::address() const { return absl::StrCat("127.0.0.1:", server_->port()); }

std::shared_ptr<grpc::Channel> TestServer::Channel() const {
  return grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
}

std::unique_ptr<moeserve::v1::Inference::Stub> TestServer::Stub() const {
  return moeserve::v1::Inference::NewStub(Channel());
}

StreamResult RunGenerate(moeserve::v1::Inference::Stub* stub, const moeserve::v1::GenerateRequest& request,
                         const std::string& api_key, double timeout_seconds) {
  StreamResult result;
  grpc::ClientContext context;
  if (!api_key.empty()) context.AddMetadata("authorization", "Bearer " + api_key);
  if (timeout_seconds > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  }
  auto reader = stub->Generate(&context, request);
  moeserve::v1::GenerateResponse response;
  while (reader->Read(&response)) {
    result.token_ids.insert(result.token_ids.end(), response.token_ids().begin(), response.token_ids().end());
    result.text += response.text();
    result.responses.push_back(response);
  }
  result.status = reader->Finish();
  return result;
}

moeserve::v1::GenerateRequest IdsRequest(std::vector<int32_t> ids, int max_tokens, bool ignore_eos) {
  moeserve::v1::GenerateRequest request;
  request.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  request.mutable_sampling()->set_max_tokens(max_tokens);
  request.mutable_sampling()->set_temperature(0.0f);
  request.mutable_sampling()->set_ignore_eos(ignore_eos);
  return request;
}

std::string HttpGet(int port, const std::string& path) {
  std::optional<RawResponse> r = HttpRequestOnce(port, "GET", path);
  if (!r.has_value()) return "";
  return absl::StrCat(r->status, "\n\n", r->body);
}

int64_t Finished(const EngineMetrics& m) {
  return m.requests_finished_stop + m.requests_finished_length + m.requests_finished_abort + m.requests_finished_error;
}

EngineMetrics WaitForIdle(Engine* engine, int64_t finished) {
  EngineMetrics m;
  for (int i = 0; i < 1000; ++i) {
    m = engine->GetMetrics();
    if (m.num_running == 0 && m.num_waiting == 0 && m.kv_blocks_used == 0 && Finished(m) >= finished &&
        Finished(m) == m.requests_added) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return m;
}

}  // namespace moeserve::testing

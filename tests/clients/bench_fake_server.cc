#include "tests/clients/bench_fake_server.h"

#include <chrono>
#include <thread>

namespace moeserve::bench::testing {

namespace v1 = moeserve::v1;
using Clock = std::chrono::steady_clock;

class FakeInferenceServer::Service final : public v1::Inference::Service {
 public:
  Service(BehaviorFn behave, std::shared_ptr<std::atomic<int>> cancelled, std::shared_ptr<Log> log)
      : behave_(std::move(behave)), cancelled_(std::move(cancelled)), log_(std::move(log)) {}

  grpc::Status GetModelInfo(grpc::ServerContext*, const v1::GetModelInfoRequest*, v1::ModelInfo* info) override {
    info->set_model_id("fake");
    info->set_vocab_size(512);
    info->set_max_model_len(4096);
    info->set_backend("fake");
    return grpc::Status::OK;
  }

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    Clock::time_point start = Clock::now();
    FakeBehavior b = behave_(*request);
    int tokens = b.tokens >= 0 ? b.tokens : request->sampling().max_tokens();
    int prompt = request->has_token_ids() ? request->token_ids().ids_size() : static_cast<int>(request->text().size());
    // One sleep per message (no polling: hundreds of polling threads would be the bottleneck);
    // a cancelled call is noticed at its next message. False when the client is gone.
    auto sleep_until = [&](Clock::time_point t) {
      std::this_thread::sleep_until(t);
      return !context->IsCancelled();
    };
    auto gone = [&] {
      cancelled_->fetch_add(1);
      return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
    };
    if (b.hang) {
      while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return gone();
    }
    std::vector<Clock::time_point> writes;
    auto save = [&] {
      std::lock_guard<std::mutex> lock(log_->mu);
      log_->writes[request->request_id()] = writes;
    };
    int sent = 0;
    for (int message = 0; sent < tokens || (tokens == 0 && message == 0); ++message) {
      if (b.fail_code != grpc::StatusCode::OK && message == b.fail_after_messages) {
        return grpc::Status(b.fail_code, "injected failure");
      }
      auto due = start + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(b.ttft_s + message * b.itl_s));
      if (!sleep_until(due)) return gone();
      v1::GenerateResponse response;
      response.set_request_id(request->request_id());
      for (int i = 0; i < b.tokens_per_message && sent < tokens; ++i, ++sent) {
        response.add_token_ids(sent % 512);
      }
      if (sent >= tokens) {
        response.set_finish_reason(v1::FINISH_REASON_LENGTH);
        response.mutable_usage()->set_prompt_tokens(prompt);
        response.mutable_usage()->set_completion_tokens(sent);
        response.mutable_usage()->set_cached_tokens(prompt / 2);
      }
      writes.push_back(Clock::now());
      if (!writer->Write(response)) return save(), gone();
    }
    save();
    return grpc::Status::OK;
  }

 private:
  BehaviorFn behave_;
  std::shared_ptr<std::atomic<int>> cancelled_;
  std::shared_ptr<Log> log_;
};

FakeInferenceServer::FakeInferenceServer(BehaviorFn behave, int port)
    : cancelled_(std::make_shared<std::atomic<int>>(0)),
      log_(std::make_shared<Log>()),
      service_(std::make_unique<Service>(std::move(behave), cancelled_, log_)) {
  grpc::ServerBuilder builder;
  int selected = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &selected);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  address_ = "127.0.0.1:" + std::to_string(selected);
}

std::vector<Clock::time_point> FakeInferenceServer::WriteTimes(const std::string& request_id) const {
  std::lock_guard<std::mutex> lock(log_->mu);
  auto it = log_->writes.find(request_id);
  return it == log_->writes.end() ? std::vector<Clock::time_point>() : it->second;
}

FakeInferenceServer::~FakeInferenceServer() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

}  // namespace moeserve::bench::testing

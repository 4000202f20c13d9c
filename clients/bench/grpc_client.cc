#include "clients/bench/grpc_client.h"

#include "clients/common/channel.h"

namespace moeserve::bench {

namespace v1 = moeserve::v1;

// One Generate call; its reactor callbacks only translate responses into observer events.
class GrpcStreamClient::Call : public StreamCall, public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  explicit Call(StreamObserver* observer) : observer_(observer) {}

  void Start(v1::Inference::Stub* stub, v1::GenerateRequest request, const std::string& bearer, double timeout_s) {
    request_ = std::move(request);
    if (!bearer.empty()) context_.AddMetadata("authorization", "Bearer " + bearer);
    if (timeout_s > 0) {
      context_.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6)));
    }
    stub->async()->Generate(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    const Clock::time_point now = Clock::now();
    if (response_.token_ids_size() > 0) observer_->OnTokens(response_.token_ids_size(), now);
    if (response_.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      std::string reason = v1::FinishReason_Name(response_.finish_reason());
      const std::string prefix = "FINISH_REASON_";
      if (reason.rfind(prefix, 0) == 0) reason.erase(0, prefix.size());
      observer_->OnFinishReason(reason);
    }
    if (response_.has_usage()) {
      observer_->OnUsage(response_.usage().prompt_tokens(), response_.usage().completion_tokens(),
                         response_.usage().cached_tokens());
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    observer_->OnDone(clients::CodeName(status.error_code()), status.error_message(), Clock::now());
  }

  void Cancel() override { context_.TryCancel(); }

 private:
  StreamObserver* observer_;
  grpc::ClientContext context_;
  v1::GenerateRequest request_;
  v1::GenerateResponse response_;
};

GrpcStreamClient::GrpcStreamClient(std::vector<std::shared_ptr<grpc::Channel>> channels, std::string bearer)
    : bearer_(std::move(bearer)) {
  for (const auto& channel : channels) stubs_.push_back(v1::Inference::NewStub(channel));
}

std::unique_ptr<StreamCall> GrpcStreamClient::Start(const BenchPrompt& prompt, const RequestSpec& spec,
                                                    StreamObserver* observer) {
  auto call = std::make_unique<Call>(observer);
  v1::Inference::Stub* stub = stubs_[next_stub_.fetch_add(1) % stubs_.size()].get();
  call->Start(stub, MakeGenerateRequest(prompt, spec), bearer_, spec.timeout_s);
  return call;
}

v1::GenerateRequest MakeGenerateRequest(const BenchPrompt& p, const RequestSpec& spec) {
  v1::GenerateRequest request;
  if (!p.token_ids.empty()) {
    request.mutable_token_ids()->mutable_ids()->Add(p.token_ids.begin(), p.token_ids.end());
  } else {
    request.set_text(p.text);
  }
  v1::SamplingParams* s = request.mutable_sampling();
  s->set_max_tokens(p.output_tokens);
  s->set_temperature(spec.temperature);
  s->set_ignore_eos(spec.ignore_eos);
  request.set_cache_salt(spec.cache_salt);
  request.set_request_id(spec.request_id);
  return request;
}

}  // namespace moeserve::bench

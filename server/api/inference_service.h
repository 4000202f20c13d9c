#ifndef MOESERVE_SERVER_API_INFERENCE_SERVICE_H_
#define MOESERVE_SERVER_API_INFERENCE_SERVICE_H_

// InferenceService: moeserve.v1.Inference as a thin adapter over the serving layer: proto in,
// serving::Frontend, proto out. A call whose client cancels, disconnects or passes its deadline has
// its request aborted in the engine: the engine probes the call before every step, the handler
// notices within `poll_interval` (or when a write fails), and the engine frees the blocks at its
// next step boundary.
//
// Thread-safe: gRPC calls the handlers concurrently. The frontend must outlive the service.

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "moeserve/v1/inference.grpc.pb.h"
#include "server/serving/frontend.h"

namespace moeserve::api {

struct InferenceServiceOptions {
  std::string model_id;       // GetModelInfo.model_id
  bool log_requests = false;  // log prompts and outputs (off: only ids and counts at debug)
  absl::Duration poll_interval = absl::Milliseconds(10);
};

class InferenceService final : public v1::Inference::Service {
 public:
  InferenceService(serving::Frontend* frontend, InferenceServiceOptions options);

  // Ends the Generate calls in flight: their engine requests are aborted and they return
  // CANCELLED (within poll_interval, unless blocked writing to a slow client). New calls are
  // refused by the frontend once it drains.
  void CancelInFlight();
  // Waits until no call is in flight or `deadline`; returns true when none is.
  bool WaitForNoActiveCalls(absl::Time deadline) const;
  int active_calls() const;

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override;
  grpc::Status GetModelInfo(grpc::ServerContext* context, const v1::GetModelInfoRequest* request,
                            v1::ModelInfo* response) override;

 private:
  class CallScope;

  // OK, or the status that refuses a new call (draining, authentication).
  grpc::Status Admit(grpc::ServerContext* context) const;

  serving::Frontend* const frontend_;
  const InferenceServiceOptions options_;
  std::atomic<bool> cancel_in_flight_{false};
  std::atomic<uint64_t> next_request_number_{1};
  mutable absl::Mutex mu_;
  int active_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// absl::Status -> grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_INFERENCE_SERVICE_H_

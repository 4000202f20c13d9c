// moeserve-bench over moeserve's gRPC API: each request is one streaming
// moeserve.v1.Inference/Generate call on gRPC's callback API (no thread per stream), sent over
// the given channels in turn. Every GenerateResponse with token ids is reported as it is read.
#ifndef MOESERVE_CLIENTS_BENCH_GRPC_CLIENT_H_
#define MOESERVE_CLIENTS_BENCH_GRPC_CLIENT_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "clients/bench/stream_client.h"
#include "grpcpp/grpcpp.h"
#include "moeserve/v1/inference.grpc.pb.h"

namespace moeserve::bench {

class GrpcStreamClient : public StreamClient {
 public:
  // `bearer`: API key for `authorization: Bearer`, "" for none. REQUIRES: channels not empty.
  GrpcStreamClient(std::vector<std::shared_ptr<grpc::Channel>> channels, std::string bearer);

  std::unique_ptr<StreamCall> Start(const BenchPrompt& prompt, const RequestSpec& spec,
                                    StreamObserver* observer) override;

 private:
  class Call;
  std::vector<std::unique_ptr<moeserve::v1::Inference::Stub>> stubs_;
  std::string bearer_;
  std::atomic<size_t> next_stub_{0};
};

// The Generate request the benchmark sends for a prompt (exposed for tests).
moeserve::v1::GenerateRequest MakeGenerateRequest(const BenchPrompt& prompt, const RequestSpec& spec);

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_GRPC_CLIENT_H_

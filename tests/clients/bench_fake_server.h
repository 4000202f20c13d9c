// An in-process fake moeserve.v1.Inference server for moeserve-bench tests: every Generate call
// streams tokens on a fixed schedule (first token at `ttft`, then one message every `itl`, times
// measured from the call's arrival so server-side delays never accumulate), or fails or hangs as
// the test's behaviour function decides. Safe for concurrent calls (sync server, a thread each).
#ifndef MOESERVE_TESTS_CLIENTS_BENCH_FAKE_SERVER_H_
#define MOESERVE_TESTS_CLIENTS_BENCH_FAKE_SERVER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "moeserve/v1/inference.grpc.pb.h"

namespace moeserve::bench::testing {

struct FakeBehavior {
  double ttft_s = 0;
  double itl_s = 0;
  // Output tokens (-1: the request's max_tokens) and tokens per message.
  int tokens = -1;
  int tokens_per_message = 1;
  // Fail with this code after sending `fail_after_messages` messages (OK: never fail).
  grpc::StatusCode fail_code = grpc::StatusCode::OK;
  int fail_after_messages = 0;
  // Send nothing until the client cancels or its deadline passes.
  bool hang = false;
};

class FakeInferenceServer {
 public:
  using BehaviorFn = std::function<FakeBehavior(const moeserve::v1::GenerateRequest&)>;

  // Listens on 127.0.0.1 with a free port (or `port` when > 0).
  explicit FakeInferenceServer(BehaviorFn behave, int port = 0);
  ~FakeInferenceServer();

  std::string address() const { return address_; }
  // Calls that ended because the client went away (cancel or deadline).
  int cancelled() const { return cancelled_->load(); }
  void Wait() { server_->Wait(); }
  // When the last call with this request_id wrote each of its messages (steady clock, taken just
  // before each Write).
  std::vector<std::chrono::steady_clock::time_point> WriteTimes(const std::string& request_id) const;

 private:
  class Service;
  struct Log {
    mutable std::mutex mu;
    std::map<std::string, std::vector<std::chrono::steady_clock::time_point>> writes;
  };
  std::shared_ptr<std::atomic<int>> cancelled_;
  std::shared_ptr<Log> log_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace moeserve::bench::testing

#endif  // MOESERVE_TESTS_CLIENTS_BENCH_FAKE_SERVER_H_

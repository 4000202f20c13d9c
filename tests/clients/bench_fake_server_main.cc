// bench_fake_server: the tests' fake Inference server as a process, to measure what moeserve-bench
// itself sustains (e.g. pinned to another core than the bench).
//   bench_fake_server --port 50099 [--ttft-ms 0] [--itl-ms 0] [--tokens-per-message 1]
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "tests/clients/bench_fake_server.h"

int main(int argc, char** argv) {
  int port = 50099;
  moeserve::bench::testing::FakeBehavior behavior;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--port"))
      port = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--ttft-ms"))
      behavior.ttft_s = std::atof(argv[i + 1]) / 1e3;
    else if (!std::strcmp(argv[i], "--itl-ms"))
      behavior.itl_s = std::atof(argv[i + 1]) / 1e3;
    else if (!std::strcmp(argv[i], "--tokens-per-message"))
      behavior.tokens_per_message = std::atoi(argv[i + 1]);
    else {
      std::cerr << "unknown flag " << argv[i] << "\n";
      return 2;
    }
  }
  moeserve::bench::testing::FakeInferenceServer server(
      [behavior](const moeserve::v1::GenerateRequest&) { return behavior; }, port);
  std::cerr << "bench_fake_server listening on " << server.address() << "\n";
  server.Wait();
}

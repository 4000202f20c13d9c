// Helpers shared by moeserve-bench's tests against fake servers (gRPC and HTTP).
#ifndef MOESERVE_TESTS_CLIENTS_BENCH_TEST_UTIL_H_
#define MOESERVE_TESTS_CLIENTS_BENCH_TEST_UTIL_H_

#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "clients/bench/dataset.h"
#include "clients/bench/metrics.h"
#include "gtest/gtest.h"

namespace moeserve::bench::testing {

// Token-id prompts whose first id selects the fake server's behaviour in a test.
inline std::vector<BenchPrompt> KindPrompts(const std::vector<int>& kinds, int output_tokens) {
  std::vector<BenchPrompt> out;
  for (int kind : kinds) {
    BenchPrompt p;
    p.token_ids = {kind, 1, 2, 3};
    p.input_tokens = 4;
    p.output_tokens = output_tokens;
    out.push_back(p);
  }
  return out;
}

// |client-measured gap - gap between the server's writes|, in ms, over every inter-token gap of
// every record; `writes_of(request_id)` gives the server's write times of one request.
inline Distribution GapErrorsMs(
    const std::vector<RequestRecord>& records,
    const std::function<std::vector<std::chrono::steady_clock::time_point>(const std::string&)>& writes_of) {
  std::vector<double> errors_ms;
  for (const RequestRecord& r : records) {
    const std::vector<std::chrono::steady_clock::time_point> writes = writes_of("bench-" + std::to_string(r.index));
    EXPECT_EQ(writes.size(), r.itls_s.size() + 1) << "request " << r.index;
    for (size_t k = 0; k < r.itls_s.size() && k + 1 < writes.size(); ++k) {
      const double sent_gap = std::chrono::duration<double>(writes[k + 1] - writes[k]).count();
      errors_ms.push_back(std::abs(r.itls_s[k] - sent_gap) * 1e3);
    }
  }
  return Distribute(errors_ms);
}

}  // namespace moeserve::bench::testing

#endif  // MOESERVE_TESTS_CLIENTS_BENCH_TEST_UTIL_H_

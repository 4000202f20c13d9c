// Per-request measurements of a load test and the summary computed from them (percentiles,
// throughput, goodput under SLOs, errors by status code). Pure functions over plain structs.
#ifndef MOESERVE_CLIENTS_BENCH_METRICS_H_
#define MOESERVE_CLIENTS_BENCH_METRICS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moeserve::bench {

// One request as the client saw it. Times in seconds; offsets are from the start of the run.
struct RequestRecord {
  int index = 0;
  double scheduled_s = 0;      // when the arrival process wanted it sent
  double sent_s = 0;           // when it was sent (later than scheduled when the concurrency cap waits)
  double ttft_s = 0;           // sent -> first response carrying a token; 0 when none came
  double e2e_s = 0;            // sent -> end of the stream
  std::vector<double> itls_s;  // gaps between responses carrying tokens
  int input_tokens = 0;        // usage.prompt_tokens, or the client's count when no usage came
  int output_tokens = 0;       // token ids received
  int cached_tokens = 0;
  std::string status = "OK";  // gRPC status code name
  std::string error;          // the status message when not OK
  std::string finish_reason;  // STOP / LENGTH / ABORT, "" when the stream ended without one

  bool ok() const { return status == "OK"; }
  // Time per output token after the first; 0 with fewer than two tokens.
  double tpot_s() const { return output_tokens > 1 ? (e2e_s - ttft_s) / (output_tokens - 1) : 0.0; }
};

// Service-level objectives in milliseconds; unset ones are not checked.
struct Slo {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
  std::optional<double> e2el_ms;
  bool empty() const { return !ttft_ms && !tpot_ms && !e2el_ms; }
};

// Parses "ttft:MS", "tpot:MS", "e2el:MS" items (each its own string, or several in one string
// separated by spaces or commas).
absl::StatusOr<Slo> ParseSlo(const std::vector<std::string>& items);

// Whether a successful request meets every set objective (a failed one never does).
bool MeetsSlo(const RequestRecord& r, const Slo& slo);

struct Distribution {
  int count = 0;
  double mean = 0, stddev = 0, min = 0, median = 0, p90 = 0, p95 = 0, p99 = 0, max = 0;
};

// Linear-interpolated percentile (numpy's default) of `values`, p in [0, 100]; 0 when empty.
double Percentile(std::vector<double> values, double p);
Distribution Distribute(const std::vector<double>& values);

struct Summary {
  int sent = 0;
  int completed = 0;                                                 // status OK
  int failed = 0;                                                    // every other status, cancellations included
  std::map<std::string, int> errors;                                 // status code name -> count
  double duration_s = 0;                                             // first send to last completion
  long long input_tokens = 0, output_tokens = 0, cached_tokens = 0;  // of completed requests
  double request_throughput = 0;                                     // completed / s
  double input_throughput = 0, output_throughput = 0, total_token_throughput = 0;  // tokens / s
  int good = 0;               // completed requests meeting the SLOs (all when none set)
  double goodput = 0;         // good / s
  double max_send_lag_s = 0;  // largest sent - scheduled (client or concurrency cap delay)
  int max_in_flight = 0;
  // In milliseconds; TTFT/TPOT/E2E over completed requests, ITL over all their gaps.
  Distribution ttft_ms, tpot_ms, itl_ms, e2el_ms;
};

Summary Summarize(const std::vector<RequestRecord>& records, double duration_s, const Slo& slo);

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_METRICS_H_

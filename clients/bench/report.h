// Renders load-test results: the summary table, the JSON document (every figure plus per-request
// records), and for rate sweeps a CSV and an SVG latency-vs-throughput plot drawn here (no plotting
// library). Pure functions.
#ifndef MOESERVE_CLIENTS_BENCH_REPORT_H_
#define MOESERVE_CLIENTS_BENCH_REPORT_H_

#include <ostream>
#include <string>
#include <vector>

#include "clients/bench/metrics.h"
#include "nlohmann/json.hpp"

namespace moeserve::bench {

// `title` heads the table (e.g. "rate 4 req/s, concurrency 16").
void PrintSummary(std::ostream& out, const std::string& title, const Summary& s, const Slo& slo);

nlohmann::json SummaryJson(const Summary& s, const Slo& slo);
nlohmann::json RecordsJson(const std::vector<RequestRecord>& records);

// One point of a sweep: the rate asked for (+inf allowed) and what was measured.
struct SweepPoint {
  double rate = 0;
  Summary summary;
};

std::string SweepCsv(const std::vector<SweepPoint>& points);
// Two panels: TTFT and TPOT (median and p99, ms) against output tokens/s, points labelled by rate.
std::string SweepSvg(const std::vector<SweepPoint>& points, const std::string& title);

// "inf" for +inf, else the shortest decimal form.
std::string RateName(double rate);

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_REPORT_H_

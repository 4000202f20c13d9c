#include "clients/bench/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace moeserve::bench {

absl::StatusOr<Slo> ParseSlo(const std::vector<std::string>& items) {
  Slo slo;
  for (const std::string& item : items) {
    std::string spaced = item;
    std::replace(spaced.begin(), spaced.end(), ',', ' ');
    std::istringstream in(spaced);
    std::string part;
    while (in >> part) {
      size_t colon = part.find(':');
      if (colon == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("--goodput: expected NAME:MS, got '", part, "'"));
      }
      std::string name = part.substr(0, colon);
      std::string number = part.substr(colon + 1);
      char* end = nullptr;
      double ms = std::strtod(number.c_str(), &end);
      if (number.empty() || *end != '\0' || !(ms >= 0)) {
        return absl::InvalidArgumentError(absl::StrCat("--goodput: bad milliseconds in '", part, "'"));
      }
      if (name == "ttft") {
        slo.ttft_ms = ms;
      } else if (name == "tpot") {
        slo.tpot_ms = ms;
      } else if (name == "e2el") {
        slo.e2el_ms = ms;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--goodput: unknown metric '", name, "' (ttft, tpot, e2el)"));
      }
    }
  }
  return slo;
}

bool MeetsSlo(const RequestRecord& r, const Slo& slo) {
  if (!r.ok()) return false;
  if (slo.ttft_ms && r.ttft_s * 1e3 > *slo.ttft_ms) return false;
  if (slo.tpot_ms && r.tpot_s() * 1e3 > *slo.tpot_ms) return false;
  if (slo.e2el_ms && r.e2e_s * 1e3 > *slo.e2el_ms) return false;
  return true;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = p / 100.0 * (v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

Distribution Distribute(const std::vector<double>& values) {
  Distribution d;
  d.count = static_cast<int>(values.size());
  if (values.empty()) return d;
  std::vector<double> v = values;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  d.mean = sum / v.size();
  double sq = 0;
  for (double x : v) sq += (x - d.mean) * (x - d.mean);
  d.stddev = std::sqrt(sq / v.size());
  d.min = v.front();
  d.max = v.back();
  d.median = Percentile(v, 50);
  d.p90 = Percentile(v, 90);
  d.p95 = Percentile(v, 95);
  d.p99 = Percentile(v, 99);
  return d;
}

Summary Summarize(const std::vector<RequestRecord>& records, double duration_s, const Slo& slo) {
  Summary s;
  s.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2e;
  // In flight at each send: sweep over (time, +1/-1) events.
  std::vector<std::pair<double, int>> events;
  for (const RequestRecord& r : records) {
    ++s.sent;
    s.max_send_lag_s = std::max(s.max_send_lag_s, r.sent_s - r.scheduled_s);
    events.emplace_back(r.sent_s, +1);
    events.emplace_back(r.sent_s + r.e2e_s, -1);
    if (!r.ok()) {
      ++s.failed;
      ++s.errors[r.status];
      continue;
    }
    ++s.completed;
    s.input_tokens += r.input_tokens;
    s.output_tokens += r.output_tokens;
    s.cached_tokens += r.cached_tokens;
    if (MeetsSlo(r, slo)) ++s.good;
    ttft.push_back(r.ttft_s * 1e3);
    if (r.output_tokens > 1) tpot.push_back(r.tpot_s() * 1e3);
    e2e.push_back(r.e2e_s * 1e3);
    for (double gap : r.itls_s) itl.push_back(gap * 1e3);
  }
  std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second < b.second;  // ends before starts
  });
  int in_flight = 0;
  for (const auto& e : events) {
    in_flight += e.second;
    s.max_in_flight = std::max(s.max_in_flight, in_flight);
  }
  if (duration_s > 0) {
    s.request_throughput = s.completed / duration_s;
    s.input_throughput = s.input_tokens / duration_s;
    s.output_throughput = s.output_tokens / duration_s;
    s.total_token_throughput = (s.input_tokens + s.output_tokens) / duration_s;
    s.goodput = s.good / duration_s;
  }
  s.ttft_ms = Distribute(ttft);
  s.tpot_ms = Distribute(tpot);
  s.itl_ms = Distribute(itl);
  s.e2el_ms = Distribute(e2e);
  return s;
}

}  // namespace moeserve::bench

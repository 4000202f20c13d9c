#ifndef MOESERVE_SERVER_API_SERVING_METRICS_H_
#define MOESERVE_SERVER_API_SERVING_METRICS_H_

// Request latency histograms observed by the API, and the Prometheus text exposition of those plus
// the engine's gauges and counters (names as in issue 5 / docs). Only timings and counts are
// recorded, never request content.
//
// Thread-safe.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/engine/engine_metrics.h"
#include "server/engine/request_output.h"
#include "server/serving/call.h"

namespace moeserve::api {

// A cumulative Prometheus histogram over fixed upper bounds (seconds). Thread-compatible.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // Appends the `name_bucket`, `name_sum` and `name_count` lines.
  void Render(const std::string& name, std::string* out) const;
  int64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bound, plus +Inf last; not cumulative
  double sum_ = 0.0;
  int64_t count_ = 0;
};

struct ServingMetricsOptions {
  // MoE expert load: false (default) renders moeserve_moe_expert_tokens_total{expert="e"} summed
  // over MoE layers (E series: 256 for DeepSeek-V3); true adds a layer label
  // {layer="l",expert="e"} (layers x E series: 58 x 256 = 14848 for V3), for a scraper that can
  // afford the cardinality.
  bool expert_load_per_layer = false;
};

class ServingMetrics final : public serving::OutputObserver {
 public:
  explicit ServingMetrics(ServingMetricsOptions options = {});

  ServingMetrics(const ServingMetrics&) = delete;
  ServingMetrics& operator=(const ServingMetrics&) = delete;

  // Inter-token gap between two deltas: `gap_seconds` spread over the `tokens` of the later one.
  void ObserveInterToken(double gap_seconds, int tokens) override;
  // The final delta of a request (its timings and usage are final).
  void ObserveFinished(const RequestOutput& final_delta) override;

  // The full /metrics page.
  std::string RenderPrometheus(const EngineMetrics& engine) const;

 private:
  const ServingMetricsOptions options_;
  mutable absl::Mutex mu_;
  Histogram ttft_ ABSL_GUARDED_BY(mu_);
  Histogram itl_ ABSL_GUARDED_BY(mu_);
  Histogram e2e_ ABSL_GUARDED_BY(mu_);
  Histogram queue_ ABSL_GUARDED_BY(mu_);
  int64_t prompt_tokens_ ABSL_GUARDED_BY(mu_) = 0;  // of finished requests
};

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_SERVING_METRICS_H_

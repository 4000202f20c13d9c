#include "server/api/serving_metrics.h"

#include <algorithm>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace moeserve::api {
namespace {

std::vector<double> LatencyBounds() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
          0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0};
}

std::string Number(double v) { return absl::StrFormat("%.9g", v); }

void Header(std::string* out, const char* name, const char* type, const char* help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void Gauge(std::string* out, const char* name, const char* help, double value) {
  Header(out, name, "gauge", help);
  absl::StrAppend(out, name, " ", Number(value), "\n");
}

void Counter(std::string* out, const char* name, const char* help, double value) {
  Header(out, name, "counter", help);
  absl::StrAppend(out, name, " ", Number(value), "\n");
}

// Speculative decoding: totals (zero when off), and, when on, per draft position j (0-based) the
// drafts verified there and accepted there; acceptance at j = accepted / drafted.
void RenderSpecDecode(const SpecDecodeMetrics& s, std::string* out) {
  Counter(out, "moeserve_spec_decode_num_drafts_total",
          "Verify steps: request steps that verified at least one draft token.", static_cast<double>(s.num_drafts));
  Counter(out, "moeserve_spec_decode_draft_tokens_total", "Draft tokens verified.",
          static_cast<double>(s.draft_tokens));
  Counter(out, "moeserve_spec_decode_accepted_tokens_total", "Draft tokens accepted.",
          static_cast<double>(s.accepted_tokens));
  for (const auto& [name, help, values] :
       {std::tuple{"moeserve_spec_decode_draft_tokens_per_pos_total", "Draft tokens verified at each draft position.",
                   &s.draft_tokens_per_position},
        std::tuple{"moeserve_spec_decode_accepted_tokens_per_pos_total",
                   "Draft tokens accepted at each draft position.", &s.accepted_tokens_per_position}}) {
    Header(out, name, "counter", help);
    for (size_t j = 0; j < values->size(); ++j) {
      absl::StrAppend(out, name, "{position=\"", j, "\"} ", (*values)[j], "\n");
    }
  }
}

// Engine steps, and rank 0's step messages to the other ranks of a tensor/expert-parallel group
// (zero on one rank): the cost of the broadcast per step is its seconds over the steps.
void RenderSteps(const EngineMetrics& m, std::string* out) {
  Counter(out, "moeserve_engine_steps_total", "Engine steps (each one forward pass of the batch).",
          static_cast<double>(m.num_steps));
  Counter(out, "moeserve_engine_step_seconds_total",
          "Wall time of the engine steps: scheduling, the forward pass, sampling and outputs.", m.step_seconds);
  const StepBroadcastMetrics& b = m.step_broadcast;
  Counter(out, "moeserve_step_broadcast_messages_total", "Step messages rank 0 sent to the other ranks.",
          static_cast<double>(b.messages));
  Counter(out, "moeserve_step_broadcast_bytes_total", "Bytes of the step messages.", static_cast<double>(b.bytes));
  Gauge(out, "moeserve_step_broadcast_max_message_bytes", "The largest step message so far, in bytes.",
        static_cast<double>(b.max_message_bytes));
  Counter(out, "moeserve_step_broadcasts_total",
          "Host broadcasts that carried step messages (one per message that fits the inline broadcast, "
          "two above).",
          static_cast<double>(b.broadcasts));
  Counter(out, "moeserve_step_broadcast_encode_seconds_total", "Rank 0's time building the step messages.",
          b.encode_seconds);
  Counter(out, "moeserve_step_broadcast_send_seconds_total",
          "Rank 0's time in the broadcasts of the step messages (waiting for the other ranks included).",
          b.send_seconds);
}

// moeserve_moe_layers and moeserve_moe_expert_tokens_total (see ServingMetricsOptions).
void RenderExpertLoad(const ExpertLoad& load, bool per_layer, std::string* out) {
  Gauge(out, "moeserve_moe_layers",
        "MoE layers of the model (the expert token counts sum to "
        "tokens x top_k per layer).",
        static_cast<double>(load.layers.size()));
  constexpr char kName[] = "moeserve_moe_expert_tokens_total";
  Header(out, kName, "counter",
         per_layer ? "Tokens routed to each routed expert of each MoE layer (a token counts once "
                     "for each of its top_k experts)."
                   : "Tokens routed to each routed expert, summed over MoE layers (a token counts "
                     "once for each of its top_k experts in every MoE layer).");
  if (per_layer) {
    for (size_t l = 0; l < load.layers.size(); ++l) {
      for (int32_t e = 0; e < load.num_experts; ++e) {
        absl::StrAppend(out, kName, "{layer=\"", load.layers[l], "\",expert=\"", e, "\"} ", load.at(l, e), "\n");
      }
    }
    return;
  }
  const std::vector<int64_t> sum = load.SumOverLayers();
  for (int32_t e = 0; e < load.num_experts; ++e) {
    absl::StrAppend(out, kName, "{expert=\"", e, "\"} ", sum[e], "\n");
  }
}

double Seconds(absl::Time from, absl::Time to) { return absl::ToDoubleSeconds(to - from); }

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::Render(const std::string& name, std::string* out) const {
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(out, name, "_bucket{le=\"", Number(bounds_[i]), "\"} ", cumulative, "\n");
  }
  absl::StrAppend(out, name, "_bucket{le=\"+Inf\"} ", count_, "\n");
  absl::StrAppend(out, name, "_sum ", Number(sum_), "\n", name, "_count ", count_, "\n");
}

ServingMetrics::ServingMetrics(ServingMetricsOptions options)
    : options_(options),
      ttft_(LatencyBounds()),
      itl_(LatencyBounds()),
      e2e_(LatencyBounds()),
      queue_(LatencyBounds()) {}

void ServingMetrics::ObserveInterToken(double gap_seconds, int tokens) {
  if (tokens <= 0) return;
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < tokens; ++i) itl_.Observe(gap_seconds / tokens);
}

void ServingMetrics::ObserveFinished(const RequestOutput& d) {
  const RequestTimings& t = d.timings;
  if (t.arrival == absl::InfinitePast()) return;
  absl::MutexLock lock(&mu_);
  prompt_tokens_ += d.usage.prompt_tokens;
  if (t.first_token != absl::InfinitePast()) ttft_.Observe(Seconds(t.arrival, t.first_token));
  if (t.first_scheduled != absl::InfinitePast()) {
    queue_.Observe(Seconds(t.arrival, t.first_scheduled));
  }
  if (t.finish != absl::InfinitePast()) e2e_.Observe(Seconds(t.arrival, t.finish));
}

std::string ServingMetrics::RenderPrometheus(const EngineMetrics& m) const {
  std::string out;
  int64_t prompt_tokens = 0;
  {
    absl::MutexLock lock(&mu_);
    prompt_tokens = prompt_tokens_;
    struct Entry {
      const char* name;
      const char* help;
      const Histogram* h;
    };
    for (const Entry& e : {
             Entry{"moeserve_time_to_first_token_seconds", "Seconds from arrival to the first generated token.",
                   &ttft_},
             Entry{"moeserve_inter_token_latency_seconds", "Seconds between consecutive generated tokens.", &itl_},
             Entry{"moeserve_e2e_request_latency_seconds", "Seconds from arrival to the end of a request.", &e2e_},
             Entry{"moeserve_request_queue_time_seconds",
                   "Seconds from arrival to the first step that computed the request.", &queue_},
         }) {
      Header(&out, e.name, "histogram", e.help);
      e.h->Render(e.name, &out);
    }
  }
  Gauge(&out, "moeserve_requests_running", "Requests in the running batch.", m.num_running);
  Gauge(&out, "moeserve_requests_waiting", "Requests queued or preempted.", m.num_waiting);
  Gauge(&out, "moeserve_kv_cache_blocks_used", "KV cache blocks held by requests.", m.kv_blocks_used);
  Gauge(&out, "moeserve_kv_cache_blocks_cached", "Free KV cache blocks that still hold a reusable cached prefix.",
        m.kv_blocks_cached_free);
  Gauge(&out, "moeserve_kv_cache_blocks_total", "Usable KV cache blocks.", m.kv_blocks_total);
  // What the Kubernetes Gateway API Inference Extension's endpoint picker reads (its model server
  // protocol): queued and running requests (above), KV cache utilisation as a fraction, and the
  // cache layout as labels of an info gauge, under its default label names.
  Gauge(&out, "moeserve_kv_cache_usage_ratio", "Fraction of the usable KV cache blocks held by requests, 0 to 1.",
        m.kv_usage);
  Header(&out, "moeserve_cache_config_info", "gauge",
         "KV cache layout: tokens per block and usable blocks, as labels; the value is 1.");
  absl::StrAppend(&out, "moeserve_cache_config_info{block_size=\"", m.kv_block_size, "\",num_gpu_blocks=\"",
                  m.kv_blocks_total, "\"} 1\n");
  Counter(&out, "moeserve_prompt_tokens_total", "Prompt tokens of finished requests.",
          static_cast<double>(prompt_tokens));
  Counter(&out, "moeserve_generation_tokens_total", "Tokens generated.", static_cast<double>(m.generation_tokens));
  Counter(&out, "moeserve_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
          static_cast<double>(m.prefix_query_tokens));
  Counter(&out, "moeserve_prefix_cache_hits_total", "Prompt tokens found in the prefix cache.",
          static_cast<double>(m.prefix_hit_tokens));
  Header(&out, "moeserve_requests_total", "counter", "Finished requests by finish reason.");
  const std::pair<const char*, int64_t> finished[] = {
      {"stop", m.requests_finished_stop},
      {"length", m.requests_finished_length},
      {"abort", m.requests_finished_abort},
      {"error", m.requests_finished_error},
  };
  for (const auto& [reason, n] : finished) {
    absl::StrAppend(&out, "moeserve_requests_total{finish_reason=\"", reason, "\"} ", n, "\n");
  }
  Counter(&out, "moeserve_requests_refused_total", "Requests refused at admission (invalid or queue full).",
          static_cast<double>(m.requests_refused));
  Counter(&out, "moeserve_preemptions_total", "Requests preempted to free KV blocks.",
          static_cast<double>(m.num_preemptions));
  Counter(&out, "moeserve_model_faults_total",
          "Sampled rows whose logits were not numbers (NaN or +inf): a fault of the model.",
          static_cast<double>(m.model_faults));
  if (m.expert_load != nullptr && !m.expert_load->empty()) {
    RenderExpertLoad(*m.expert_load, options_.expert_load_per_layer, &out);
  }
  RenderSpecDecode(m.spec_decode, &out);
  RenderSteps(m, &out);
  return out;
}

}  // namespace moeserve::api

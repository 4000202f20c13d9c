#ifndef MOESERVE_SERVER_ENGINE_ENGINE_METRICS_H_
#define MOESERVE_SERVER_ENGINE_ENGINE_METRICS_H_

#include <cstdint>
#include <memory>

#include "server/model/expert_load.h"
#include "server/spec/speculator.h"

namespace moeserve {

// Rank 0 of a tensor/expert-parallel group: the step messages it broadcast to the other ranks
// (server/runner/step_channel.h). All zero on a single rank.
struct StepBroadcastMetrics {
  int64_t messages = 0;
  int64_t bytes = 0;
  int64_t max_message_bytes = 0;
  int64_t broadcasts = 0;       // host broadcasts (one per message unless it exceeds the inline size)
  double encode_seconds = 0.0;  // building the messages
  double send_seconds = 0.0;    // in the broadcasts
};

// A snapshot of the engine's counters, published after every step (for /metrics and tests).
// Gauges describe the state after the last step; counters are totals since Create().
struct EngineMetrics {
  // Gauges.
  int32_t num_running = 0;
  int32_t num_waiting = 0;      // queued or preempted, plus not yet picked up by the engine thread
  int32_t kv_blocks_total = 0;  // usable blocks (without the null block)
  int32_t kv_blocks_used = 0;
  int32_t kv_blocks_cached_free = 0;
  double kv_usage = 0.0;      // kv_blocks_used / kv_blocks_total
  int32_t kv_block_size = 0;  // tokens per KV block (EngineConfig::block_size)

  // Counters.
  int64_t num_steps = 0;
  double step_seconds = 0.0;  // wall time of the engine's steps (scheduling, model, sampling, outputs)
  int64_t prefix_query_tokens = 0;
  int64_t prefix_hit_tokens = 0;
  double prefix_hit_rate = 0.0;        // prefix_hit_tokens / prefix_query_tokens
  int64_t prompt_tokens_computed = 0;  // tokens run through the model that sampled nothing
  int64_t tokens_computed = 0;         // all tokens run through the model
  int64_t generation_tokens = 0;       // tokens sampled and delivered
  int64_t num_preemptions = 0;
  int64_t requests_added = 0;
  int64_t requests_refused = 0;  // rejected by AddRequest (invalid or admission)
  int64_t requests_finished_stop = 0;
  int64_t requests_finished_length = 0;
  int64_t requests_finished_abort = 0;
  int64_t requests_finished_error = 0;
  int64_t model_faults = 0;  // sampled rows whose logits were not numbers (see Engine::healthy)

  // Speculative decoding (zero when off): drafts verified and accepted, in total and per draft
  // position (server/spec/speculator.h).
  SpecDecodeMetrics spec_decode;

  StepBroadcastMetrics step_broadcast;

  // Routed-expert load of a MoE model (null for dense models): totals since the engine started,
  // refreshed every EngineConfig::expert_load_interval_steps steps and whenever the engine goes
  // idle, so it may trail the other counters by that many steps while busy.
  std::shared_ptr<const ExpertLoad> expert_load;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_ENGINE_ENGINE_METRICS_H_

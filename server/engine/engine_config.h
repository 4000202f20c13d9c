#ifndef MOESERVE_SERVER_ENGINE_ENGINE_CONFIG_H_
#define MOESERVE_SERVER_ENGINE_ENGINE_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>

#include "server/spec/spec_config.h"

namespace moeserve {

// Every option of an Engine, in one place. The defaults serve a small model on the CPU.
struct EngineConfig {
  std::string model_dir;       // Hugging Face directory (config.json + safetensors)
  std::string tokenizer_dir;   // empty: model_dir. Without tokenizer.json there the engine
                               // works on ids only: no text deltas and no stop strings.
  std::string device = "cpu";  // see BackendOptions::device
  int num_threads = 0;         // backend worker threads; <= 0: all hardware threads

  // KV cache: num_kv_blocks (including the null block) when > 0, else sized from
  // kv_cache_memory_bytes through Model::kv_cache_spec() and NumKvBlocksForMemory().
  int32_t block_size = 16;
  // Host (CPU) budget; 0: auto, one full-context request (>= 64 MiB) capped at a quarter of the
  // available memory, with a model's default context capped to what that holds (kv_memory_plan.h).
  int64_t kv_cache_memory_bytes = 0;
  int32_t num_kv_blocks = 0;
  bool enable_prefix_caching = true;
  // On a device backend (CUDA) kv_cache_memory_bytes is not used: the budget is
  // device_kv_cache_memory_bytes when > 0, else gpu_memory_utilization x device memory minus what
  // the weights and a measured max-size step use (see kv_memory_plan.h).
  double gpu_memory_utilization = 0.9;
  int64_t device_kv_cache_memory_bytes = 0;
  // Pure-decode steps of up to max_graph_batch sequences (capped at max_num_seqs) replay CUDA
  // graphs, recorded per batch-size bucket on first use (server/runner/decode_graph_runner.h);
  // ignored on backends without graphs (the CPU). The KV budget then reserves one more
  // activation peak for the graph pool.
  bool cuda_graphs = true;
  int32_t max_graph_batch = 256;

  // Tensor parallelism (server/dist): the model's layers sharded over this many ranks, one process
  // each (mpirun -np N); rank 0 runs the Engine, the others RunFollower(). expert_parallel: MoE
  // experts are placed whole on ranks instead of each being sharded; ep_dispatch (EpDispatch,
  // server/model/parallel.h): "allreduce" or "alltoall" (which reads the routing back to the host
  // every MoE layer, so it runs without CUDA graphs). A collective that does not complete within
  // collective_timeout_seconds ends the whole group.
  int32_t tensor_parallel_size = 1;
  bool expert_parallel = false;
  std::string ep_dispatch = "allreduce";
  double collective_timeout_seconds = 300;

  // Scheduling (see SchedulerConfig).
  // Tokens per step at most; 0: 512 on the CPU (prefill chunks of GEMM-friendly 64-row tiles that
  // keep the time to first token of queued requests low under load), 2048 on a device.
  int32_t max_num_batched_tokens = 0;
  int32_t max_num_seqs = 256;
  int32_t max_model_len = 0;  // 0: the model's max_position_embeddings
  int32_t long_prefill_token_threshold = 0;
  // Admission. AddRequest refuses (ResourceExhausted, counted in requests_refused) a request that
  // would make more than max_queued_requests wait: > 0, that many; 0, no limit; kAutoQueueLimit
  // (the default), twice the sequences the engine can run at once, min(max_num_seqs, usable KV
  // blocks), at least max_num_samples: a request beyond would wait behind two full rounds. Or more than
  // max_queued_tokens waiting prompt tokens (> 0; 0: no limit). A request that has waited max_queue_time_seconds
  // (> 0; 0: no limit) without being scheduled is refused the same way at the next step.
  static constexpr int32_t kAutoQueueLimit = -1;
  int32_t max_queued_requests = kAutoQueueLimit;
  int64_t max_queued_tokens = 0;
  double max_queue_time_seconds = 0;
  // SamplingParams::n at most. Each sample is scheduled as a request of its own (sharing the
  // prompt's KV blocks) and counts n times against max_queued_requests / max_queued_tokens.
  int32_t max_num_samples = 16;

  // Speculative decoding (server/spec/spec_config.h): off unless speculative.method is set.
  SpeculativeConfig speculative;

  // Seeds the source of seeds for requests without one; nullopt: nondeterministic.
  std::optional<uint64_t> seed;

  // MoE expert-load counters (EngineMetrics::expert_load) are copied from the device every this
  // many steps, right after a step's own synchronisation (one small copy per MoE layer, never an
  // extra sync inside a step), and when the engine goes idle; 0: never read.
  int32_t expert_load_interval_steps = 16;

  // Test hook: after every step, run CheckIntegrity() and fail loudly (MS_CHECK) on an error.
  bool check_integrity_every_step = false;
};

// False where the model's decode step cannot be recorded as a CUDA graph: the all-to-all expert
// dispatch reads each MoE layer's routing back to the host.
inline bool UsesCudaGraphs(const EngineConfig& c) {
  return !(c.tensor_parallel_size > 1 && c.expert_parallel && c.ep_dispatch == "alltoall");
}

}  // namespace moeserve

#endif  // MOESERVE_SERVER_ENGINE_ENGINE_CONFIG_H_

// The device-memory options shared by `serve` and `generate` (see server/runner/kv_memory_plan.h).

#include <string>

#include "server/cli/commands.h"
#include "server/runner/kv_memory_plan.h"

namespace moeserve {

void AddDeviceMemoryOptions(CLI::App* cmd, EngineConfig* config) {
  cmd->add_option("--gpu-memory-utilization", config->gpu_memory_utilization,
                  "fraction of GPU memory for weights, activations and the KV cache (CUDA)")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1.0));
  cmd->add_option_function<std::string>(
      "--kv-cache-memory",
      [config](const std::string& text) {
        absl::StatusOr<int64_t> bytes = ParseByteSize(text);
        if (!bytes.ok()) throw CLI::ValidationError("--kv-cache-memory", std::string(bytes.status().message()));
        config->device_kv_cache_memory_bytes = *bytes;
      },
      "GPU KV cache size, e.g. 20GiB (overrides --gpu-memory-utilization for the cache; CUDA)");
  cmd->add_flag("--cuda-graphs,!--no-cuda-graphs", config->cuda_graphs,
                "replay CUDA graphs for pure-decode steps, recorded per batch-size bucket (CUDA)")
      ->capture_default_str();
  cmd->add_option("--max-graph-batch", config->max_graph_batch,
                  "largest decode batch replayed through a CUDA graph (capped at --max-num-seqs)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
}

}  // namespace moeserve

#ifndef MOESERVE_SERVER_RUNNER_KV_MEMORY_PLAN_H_
#define MOESERVE_SERVER_RUNNER_KV_MEMORY_PLAN_H_

// The engine's KV layout (server/kv/kv_layout.h): the configured block size, the model's
// per-layer spec and how many blocks fit.
//
// On a backend with device memory (CUDA) the budget is measured, as vLLM does: with the weights
// loaded, one dummy step of the largest shape the scheduler can produce (max_num_batched_tokens
// tokens over min(max_num_seqs, tokens) sequences, every sequence sampling) runs on a small
// temporary cache, and the caching allocator's peak over that step is the activation peak. Then
//
//   budget = gpu_memory_utilization * total - used - activation_peak
//
// where `used` is the device memory in use after the step minus the temporary cache and the
// allocator's cached (reusable) blocks: weights, workspaces, the CUDA context and other processes.
// An explicit kv_cache_memory_bytes replaces the formula (and must fit in what is free).
// With CUDA-graph decode (reserve_graph_memory) one more activation peak is subtracted: the graphs'
// private pool (decode_graph_runner.h) holds about one decode step's activations, which the
// max-size profile step bounds, and is recorded after the cache exists, so it is estimated here
// rather than measured.
// On the CPU (host memory) an explicit budget is used as is; the default (0, auto) is what one
// request of the full context needs (at least 64 MiB), capped at a quarter of the host memory
// available at start-up. KvCachePlan::max_model_len says how much context the planned cache holds,
// so that the engine can cap a model's long default context to what fits (as llama.cpp's server
// does) instead of refusing to start. An explicit block count skips sizing.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/backend/backend.h"
#include "server/dist/communicator.h"
#include "server/kv/kv_layout.h"
#include "server/model/forward_batch.h"
#include "server/model/model.h"

namespace moeserve {

// The budget arithmetic alone (no device), unit-tested.
struct KvMemoryBudgetInputs {
  int64_t total_bytes = 0;            // device memory
  int64_t used_bytes = 0;             // in use, excluding activations and the allocator cache
  int64_t activation_peak_bytes = 0;  // measured over the dummy step
  int64_t graph_reserve_bytes = 0;    // kept for the CUDA-graph pool
  double gpu_memory_utilization = 0.9;
  int64_t kv_cache_memory_bytes = 0;  // > 0: explicit budget
};
// InvalidArgument for a utilization outside (0, 1]; ResourceExhausted when nothing is left for the
// cache (the message names weights, activations and the limit).
absl::StatusOr<int64_t> KvCacheMemoryBudget(const KvMemoryBudgetInputs& in);

// The dummy step of the profile run: `num_tokens` tokens (capped at num_seqs * max_seq_len) over
// min(num_seqs, num_tokens) sequences of near-equal length starting at position 0, each wanting
// logits, on consecutive blocks from block 1 (block 0 is the pool's null block).
// *num_blocks: the cache blocks it needs, null block included.
ForwardBatch ProfileForwardBatch(int32_t num_tokens, int32_t num_seqs, int32_t max_seq_len, int32_t block_size,
                                 int32_t* num_blocks);

struct KvCachePlanOptions {
  int32_t block_size = 16;
  int32_t num_blocks = 0;  // > 0: exactly this many (null block included); no sizing
  int32_t max_num_batched_tokens = 2048;
  int32_t max_num_seqs = 256;
  int32_t max_model_len = 0;
  int64_t host_kv_cache_memory_bytes = 0;  // the CPU budget; 0: auto (see above)
  int64_t host_available_bytes = 0;        // auto's reference; 0: MemAvailable now
  double gpu_memory_utilization = 0.9;
  int64_t device_kv_cache_memory_bytes = 0;  // > 0: explicit device budget
  bool reserve_graph_memory = false;         // CUDA graphs: keep one more activation peak
};

struct KvCachePlan {
  KvLayout layout;            // the value the KV manager, the model's cache and the runner get
  int64_t budget_bytes = 0;   // 0 for an explicit block count
  bool auto_sized = false;    // host budget chosen by the auto rule
  int32_t max_model_len = 0;  // tokens one request can hold: min(the asked context, the cache)
  bool profiled = false;      // measured on a device (the fields below are set)
  int64_t total_bytes = 0;
  int64_t used_bytes = 0;
  int64_t activation_peak_bytes = 0;
  int64_t graph_reserve_bytes = 0;
  std::string ToString() const;
};

// Makes the KV layout for `model` on `backend`. On a device backend without an explicit block
// count this runs the profile step: the model's KV cache is left at one block (the caller
// allocates the planned layout next). InvalidArgument for block_size < 1 or num_blocks == 1.
absl::StatusOr<KvCachePlan> PlanKvCache(Model* model, Backend* backend, const KvCachePlanOptions& options);

// The layout every rank of a tensor-parallel group can hold: each rank planned its own (its own
// spec: its share of the heads; its own memory), and the group takes the smallest block count,
// since rank 0's block ids index every rank's cache. Collective over `group`; FailedPrecondition
// when the ranks disagree on the block size.
absl::StatusOr<KvLayout> AgreeKvLayout(Communicator* group, const KvLayout& mine);

// The host memory available for new allocations (/proc/meminfo MemAvailable; else free pages).
int64_t HostAvailableMemoryBytes();

// "1.5GiB", "512MiB", "2G", "1000000" (bytes) -> bytes. InvalidArgument otherwise.
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_KV_MEMORY_PLAN_H_

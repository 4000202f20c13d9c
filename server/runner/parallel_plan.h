#ifndef MOESERVE_SERVER_RUNNER_PARALLEL_PLAN_H_
#define MOESERVE_SERVER_RUNNER_PARALLEL_PLAN_H_

// `moeserve plan`: what a model needs on a group of GPUs, before anyone rents them. From the
// model's config alone (its architecture's tensor list, server/model/decoder_tensors.h), split as
// tensor parallelism splits it at load (server/model/parallel.h), in the dtypes the CUDA backend
// holds: routed experts stored as fp8 with 128x128 block scales stay fp8 (1 byte per weight plus
// one f32 scale per block) when a rank's share falls on whole blocks, as do the shared experts
// fused into their stack; every other matrix is held in bf16 (fp8 ones are widened at load) and
// vectors in f32. The KV cache is bf16: K and V rows of the rank's kv heads (GQA), or the whole MLA
// latent row (576 values per layer for DeepSeek-V3) on every rank.
//
//   per rank: weights + reserve (activations, CUDA context, workspaces)
//   KV budget = gpu_memory * gpu_memory_utilization - weights - reserve
//   KV tokens = KV budget / KV bytes per token (per rank; every rank holds the same tokens)
//
// The refusals are those of the load: a size the ranks cannot split names the field and N, an fp8
// block-scaled share off the 128-blocks is refused likewise.
//
// Plain functions over values; thread-compatible.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/model/config.h"

namespace moeserve {

struct ParallelPlanOptions {
  int gpus = 1;
  int tensor_parallel_size = 0;  // 0: gpus (one group over every GPU)
  bool expert_parallel = false;
  bool ep_all_to_all = false;    // --ep-dispatch alltoall: the shared experts whole on every rank
  int64_t gpu_memory_bytes = 0;  // per GPU
  double gpu_memory_utilization = 0.9;
  int64_t reserve_bytes = int64_t{4} << 30;  // activations, CUDA context, workspaces per rank
  int64_t seq_len = 4096;                    // tokens per sequence for the concurrency figure
};

struct ParallelPlan {
  int ranks = 1;
  int64_t weight_bytes_per_rank = 0;         // the largest rank's (all ranks hold equal shares)
  int64_t replicated_bytes_per_rank = 0;     // of which whole on every rank (norms, routers, MLA latents)
  int64_t weight_bytes_total = 0;            // the whole model in the same dtypes, on one device
  int64_t checkpoint_fp8_widened_bytes = 0;  // per rank: fp8 matrices held as bf16 (see above)
  int64_t kv_bytes_per_token = 0;            // per rank
  bool kv_replicated = false;                // MLA: every rank holds the whole latent cache
  int64_t kv_budget_bytes = 0;               // per rank; negative when the weights do not fit
  int64_t kv_capacity_tokens = 0;
  int64_t concurrent_sequences = 0;  // at options.seq_len
  bool fits = false;                 // weights + reserve fit and one sequence of seq_len too
  std::string ToString(const ModelConfig& config, const ParallelPlanOptions& options) const;
};

// InvalidArgument for options out of range (naming the flag), for a tensor-parallel size other
// than gpus, and for a model the ranks cannot split (as the load would refuse it).
absl::StatusOr<ParallelPlan> PlanParallel(const ModelConfig& config, const ParallelPlanOptions& options);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_PARALLEL_PLAN_H_

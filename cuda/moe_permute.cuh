#ifndef MOESERVE_CUDA_MOE_PERMUTE_CUH_
#define MOESERVE_CUDA_MOE_PERMUTE_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/moe_layout.h"

namespace moeserve::kernels {

// Device-side counting sort of the (token, slot) pairs by expert, in one CTA of 1024 threads:
// histogram (shared-memory atomics, warp-aggregated) → exclusive scan of the padded counts →
// scatter. Each token has K + S slots: its K routed experts (topk_ids) and then the S shared
// experts, which are the last S of the num_experts and are applied to every token (S =
// num_shared, 0 for none). Writes, for the GEMMs and the combine:
//   row_token [max_rows]   token whose x row permuted row r reads; -1 for padding rows
//   pair_row  [T·(K+S)]    permuted row of pair i = t·(K+S) + slot; -1 for a routed id outside
//                          [0, E - S)
//   tile_expert [max_m_tiles]  expert of M-tile m (valid for m < *num_m_tiles)
//   num_m_tiles [1]        tiles in use
//   expert_counts [E - S] i64  optional (may be null): += pairs routed to each routed expert
//                          (load stats; shared experts are not counted), only over tokens
//                          t < *num_valid_tokens (clamped to [0, T]) when that is not null:
//                          rows past it are padding, permuted and computed but not counted
// Rows within an expert's segment are in no particular order (each row's GEMM result does not
// depend on its position, so outputs are still deterministic). A routed id outside [0, E - S)
// sets `error_bit` in *error_flags and the pair contributes nothing. Expert parallelism: with
// routed_total > 0, topk_ids name the model's routed_total experts, this rank holds
// [expert_offset, expert_offset + E - S) of them, and a pair routed elsewhere is skipped
// (pair_row -1, not counted, no error); only ids outside [0, routed_total) are errors.
// REQUIRES: num_experts in [1, kMoeMaxExperts], num_shared in [0, num_experts); buffers sized by
// MoeMaxRows / MoeMaxMTiles of T·(K+S) pairs.
struct MoePermuteParams {
  const int32_t* topk_ids = nullptr;  // [T, K]
  int64_t pairs = 0;                  // T·(K+S)
  int top_k = 0;                      // K (may be 0 when S > 0)
  int num_shared = 0;                 // S
  int num_experts = 0;                // routed + shared (this rank's)
  int expert_offset = 0;              // expert parallelism: first routed expert held here
  int routed_total = 0;               // the model's routed experts; 0: num_experts - num_shared
  int32_t* row_token = nullptr;
  int32_t* pair_row = nullptr;
  int32_t* tile_expert = nullptr;
  int32_t* num_m_tiles = nullptr;
  int64_t* expert_counts = nullptr;
  const int32_t* num_valid_tokens = nullptr;  // [1] on the device; null: all T tokens count
  unsigned* error_flags = nullptr;
  unsigned error_bit = 0;
};

cudaError_t LaunchMoePermute(const MoePermuteParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_MOE_PERMUTE_CUH_

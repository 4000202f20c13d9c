#ifndef MOESERVE_SERVER_BACKEND_CUDA_MOE_PLAN_H_
#define MOESERVE_SERVER_BACKEND_CUDA_MOE_PLAN_H_

// Host-side plan of the CUDA MoE experts path: the batch's (token, slot) pairs sorted by expert
// (counting sort; within an expert by pair index, as the CPU reference), so each active expert runs
// as two GEMMs over a contiguous block of gathered rows. Plain C++, unit-tested without a GPU.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moeserve {

struct MoePlan {
  std::vector<int64_t> expert_start;  // [E + 1]: rows [start[e], start[e+1]) belong to expert e
  std::vector<int32_t> row_token;     // [T·K]: token whose input row r gathers
  std::vector<int32_t> pair_row;      // [T·K]: sorted row of pair i = t·K + k
  int64_t max_rows = 0;               // rows of the busiest expert
};

// ids [T, K] row-major. InvalidArgument "MoeExperts: topk_ids[t, k] = v is outside [0, E)" for an
// id out of range.
absl::StatusOr<MoePlan> BuildMoePlan(absl::Span<const int32_t> ids, int64_t tokens, int64_t top_k,
                                     int64_t num_experts);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_CUDA_MOE_PLAN_H_

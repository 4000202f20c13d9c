#ifndef MOESERVE_SERVER_BACKEND_CUDA_MOE_PLAN_H_
#define MOESERVE_SERVER_BACKEND_CUDA_MOE_PLAN_H_

// Host-side arithmetic of the CUDA MoE experts path (cuda/moe_permute, cuda/moe_grouped_gemm):
// the workspace of one MoeExperts call, sized from T·K alone so that the call never waits for the
// routing (no host sync, CUDA-graph capturable), and a host model of the tile schedule the device
// builds, for tests. Plain C++, unit-tested without a GPU.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moeserve {

// Byte offsets (256-aligned) of the buffers in one workspace allocation. With S fused shared
// experts (MoeExpertsExtras::num_shared_experts) every token has K + S pairs and num_experts
// counts routed + shared experts.
struct MoeWorkspaceLayout {
  int64_t max_m_tiles = 0;  // grid bound of the grouped GEMMs
  int64_t max_rows = 0;     // max_m_tiles · kMoeTileM
  int64_t row_token = 0;    // i32 [max_rows]
  int64_t pair_row = 0;     // i32 [T·(K+S)]
  int64_t tile_expert = 0;  // i32 [max_m_tiles]
  int64_t num_m_tiles = 0;  // i32 [1]
  int64_t act = 0;          // bf16 [max_rows, I]
  int64_t expert_out = 0;   // bf16 [max_rows, d]
  int64_t total_bytes = 0;
};
MoeWorkspaceLayout PlanMoeWorkspace(int64_t tokens, int64_t top_k, int64_t num_experts, int64_t hidden,
                                    int64_t intermediate, int64_t num_shared = 0);

// What moe_permute computes, on the host: each expert's segment [start[e], start[e] + count[e])
// of the permuted rows, segments padded to kMoeTileM and laid out in expert order, and the expert
// of each M-tile. The last `num_shared` of the num_experts are the fused shared experts: every
// token is one of their rows, and the routed ids must lie in [0, num_experts - num_shared).
struct MoeTileSchedule {
  std::vector<int64_t> count;        // [E]
  std::vector<int64_t> start;        // [E + 1], multiples of kMoeTileM
  std::vector<int32_t> tile_expert;  // [num_m_tiles]
  int64_t num_m_tiles = 0;
};
// ids [T, K] row-major. InvalidArgument "MoeExperts: topk_ids[t, k] = v is outside [0, E - S)".
absl::StatusOr<MoeTileSchedule> BuildMoeTileSchedule(absl::Span<const int32_t> ids, int64_t tokens, int64_t top_k,
                                                     int64_t num_experts, int64_t num_shared = 0);

// Device layout of an fp8 block weight on the CUDA backend: e4m3 bytes [numel] (16-column groups
// permuted for the GEMM), then f32 scales at this offset.
inline int64_t Fp8ScalesOffset(int64_t numel) { return (numel + 255) / 256 * 256; }

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_CUDA_MOE_PLAN_H_

#ifndef MOESERVE_CUDA_MOE_FP8_PLAN_H_
#define MOESERVE_CUDA_MOE_FP8_PLAN_H_

// Host-side choices of the W8A8 MoE path (moe_fp8_gemm.cuh): when fp8 expert weights run as fp8 ×
// fp8 (activations quantized per token per 128 channels) instead of W8A16, and the sizes it needs.
// Plain C++: unit-tested without a GPU.

#include <cstdint>

#include "cuda/moe_layout.h"

namespace moeserve::kernels {

// W8A8 pays two quantize launches and per-128-K rescaling to double the tensor-core rate; that wins
// once GEMM tiles are full, i.e. when the experts average at least one M-tile (64 rows) of pairs.
// Decode batches (a few rows per expert) are weight-bandwidth bound: both paths read the same fp8
// bytes, and W8A16 keeps bf16 activations. The routing is on the device, so the choice uses the
// average: pairs = tokens × (top_k + fused shared experts) over all experts.
constexpr int64_t kMoeW8A8MinRowsPerExpert = kMoeTileM;
constexpr bool MoeUseW8A8(bool fp8_weights, int64_t tokens, int64_t pairs_per_token, int64_t num_experts) {
  return fp8_weights && num_experts > 0 && tokens > 0 &&
         tokens * pairs_per_token >= kMoeW8A8MinRowsPerExpert * num_experts;
}

// Quantization granularity of activations (= the weight block size along K).
constexpr int kMoeFp8ActBlock = 128;
// Activation scales below this amax are clamped (all-zero rows: padding) so that scales stay finite.
constexpr float kMoeFp8MinAmax = 1e-4f;
constexpr float kE4M3Max = 448.0f;

// Grouped W8A8 GEMM tiling: 64 rows × 128 weight rows × 128 K bytes per stage, 3 stages.
constexpr int kMoeFp8GemmStages = 3;
constexpr int64_t MoeFp8GemmSharedBytes() { return kMoeFp8GemmStages * (kMoeTileM * 128 + kMoeGemmTileN * 128); }

// Extra workspace of the W8A8 path (256-aligned offsets): x quantized [T, d] + scales [T, d/128],
// the intermediate quantized [max_rows, I] + scales [max_rows, I/128].
struct MoeW8A8Workspace {
  int64_t xq = 0, xs = 0, hq = 0, hs = 0, total_bytes = 0;
};
constexpr int64_t MoeAlign256(int64_t v) { return (v + 255) / 256 * 256; }
constexpr MoeW8A8Workspace PlanMoeW8A8Workspace(int64_t tokens, int64_t hidden, int64_t max_rows,
                                                int64_t intermediate) {
  MoeW8A8Workspace w;
  w.xq = 0;
  w.xs = MoeAlign256(w.xq + tokens * hidden);
  w.hq = MoeAlign256(w.xs + tokens * (hidden / kMoeFp8ActBlock) * 4);
  w.hs = MoeAlign256(w.hq + max_rows * intermediate);
  w.total_bytes = MoeAlign256(w.hs + max_rows * (intermediate / kMoeFp8ActBlock) * 4);
  return w;
}

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_MOE_FP8_PLAN_H_

#ifndef MOESERVE_CUDA_MOE_LAYOUT_H_
#define MOESERVE_CUDA_MOE_LAYOUT_H_

// Tile and workspace arithmetic of the CUDA MoE path (moe_permute, moe_grouped_gemm), shared with
// the host code that sizes workspaces and checks shapes. Plain C++: unit-tested without a GPU.

#include <cstdint>

namespace moeserve::kernels {

// Rows of one M-tile of the MoE grouped GEMMs (moe_grouped_gemm.cuh). Each expert's segment of
// the permuted rows is padded to a multiple of it so that a tile belongs to one expert.
constexpr int kMoeTileM = 64;
// Most experts the single-CTA permutation supports (one thread per expert in the scan).
constexpr int kMoeMaxExperts = 1024;

// Upper bounds that size the MoE workspace from T·K alone, so that nothing depends on the routing
// (no host sync; CUDA-graph capturable). Padding adds < kMoeTileM rows to each non-empty expert,
// and at most min(E, pairs) experts are non-empty.
constexpr int64_t MoeMaxMTiles(int64_t pairs, int64_t num_experts) {
  return pairs == 0 ? 0 : (pairs + kMoeTileM - 1) / kMoeTileM + (num_experts < pairs ? num_experts : pairs);
}
constexpr int64_t MoeMaxRows(int64_t pairs, int64_t num_experts) {
  return MoeMaxMTiles(pairs, num_experts) * kMoeTileM;
}
// Rows expert segment of `count` pairs occupies after padding.
constexpr int64_t MoePaddedRows(int64_t count) { return (count + kMoeTileM - 1) / kMoeTileM * kMoeTileM; }

// Weight storage of the grouped GEMM.
enum class MoeWeightFormat : int {
  kBf16 = 0,
  // e4m3 bytes with one fp32 scale per 128×128 block (DeepSeek-V3 `weight_scale_inv`), bytes of
  // every 16-column group stored in the order of PermuteFp8ForMma (fp8_weight.cuh).
  kFp8Block128 = 1,
};

// Tile shape: kMoeTileM (64) rows × 128 weight rows (the gate_up_silu mode takes 64 gate + 64
// up rows, i.e. 64 output columns) × 128 weight bytes per pipeline stage.
constexpr int kMoeGemmTileN = 128;
constexpr int kMoeGemmStageWeightBytes = 128;
constexpr int MoeGemmStages(MoeWeightFormat format) { return format == MoeWeightFormat::kBf16 ? 4 : 3; }
// Dynamic shared memory of one CTA: stages × (A tile 64 × BK bf16 + W tile 128 × 128 bytes), where
// BK = 64 (bf16 weights) or 128 (fp8 weights, one scale block per stage). 96 KiB: two CTAs/SM.
constexpr int64_t MoeGemmSharedBytes(MoeWeightFormat format) {
  return MoeGemmStages(format) *
         (64 * (format == MoeWeightFormat::kBf16 ? 128 : 256) + kMoeGemmTileN * kMoeGemmStageWeightBytes);
}
// Output columns one CTA covers, and the grid's N extent.
constexpr int64_t MoeGemmTileCols(bool gate_up_silu) { return gate_up_silu ? kMoeGemmTileN / 2 : kMoeGemmTileN; }
constexpr int64_t MoeGemmNTiles(int64_t n, bool gate_up_silu) {
  return (n + MoeGemmTileCols(gate_up_silu) - 1) / MoeGemmTileCols(gate_up_silu);
}

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_MOE_LAYOUT_H_
